"""``grasp-bench leaderboard build``: the board from the submissions, deterministically (the
same submissions give the same bytes): Markdown, CSV, a Pareto plot per task and model, and a
static HTML page with a sortable table."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from grasp_bench.leaderboard.schema import SampleRecord, Summary
from grasp_bench.leaderboard.validate import submission_dirs
from grasp_bench.report import tradeoff_png
from grasp_bench.stats import paired_difference
from grasp_bench.store import atomic_write_bytes, atomic_write_text


def _fmt(mean, lo, hi) -> str:
    return "n/a" if mean is None else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _samples(sub: Path) -> pd.DataFrame:
    rows = []
    for line in (sub / "samples.jsonl").read_text().splitlines():
        if line.strip():
            s = SampleRecord.model_validate_json(line)
            rows += [
                {"prompt_id": s.prompt_id, "split": s.split, "metric": m, "value": sc.value}
                for m, sc in s.scores.items()
            ]
    return pd.DataFrame(rows)


def collect(root: Path) -> pd.DataFrame:
    """One row per submission, with paired differences against plain LoRA on the same prompts."""
    from grasp_bench.taskspec import get_task

    rows, frames = [], {}
    for sub in submission_dirs(root):
        s = Summary.model_validate_json((sub / "summary.json").read_text())
        frames[(s.task, s.model, s.method)] = _samples(sub)
        rel = sub.relative_to(root).as_posix()
        rows.append(
            {
                "task": s.task,
                "model": s.model,
                "method": s.method,
                "description": s.description,
                "drift": s.drift.mean,
                "drift_lo": s.drift.lo,
                "drift_hi": s.drift.hi,
                "task_score": s.task_score.mean,
                "task_lo": s.task_score.lo,
                "task_hi": s.task_score.hi,
                "coherence": s.coherence.mean if s.coherence else None,
                "unscored_share": s.unscored_share,
                "seeds": ",".join(map(str, s.seeds)),
                "n": s.n_samples,
                "judges": "; ".join(s.judges),
                "drift_metric": s.drift_metric or get_task(s.task).drift_metric.name,
                "drift_judge": s.drift_judge or "",
                "task_judge": s.task_judge or "",
                "backend": s.backend,
                "recipe": f"{rel}/recipe.yaml",
                "summary": f"{rel}/summary.json",
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for i, r in df.iterrows():
        ref = frames.get((r.task, r.model, "lora"))
        mine = frames[(r.task, r.model, r.method)]
        spec = get_task(r.task)
        if ref is None or r.method == "lora":
            continue
        for name, metric, split in (
            ("drift", spec.drift_metric.name, "drift"),
            ("task", spec.task_metric.name, "task"),
        ):
            a = mine[(mine.metric == metric) & (mine.split == split)].dropna(subset=["value"])
            b = ref[(ref.metric == metric) & (ref.split == split)].dropna(subset=["value"])
            d = paired_difference(a, b)
            df.loc[i, f"{name}_vs_lora"] = round(d.mean, 6)
            df.loc[i, f"{name}_vs_lora_lo"] = round(d.lo, 6)
            df.loc[i, f"{name}_vs_lora_hi"] = round(d.hi, 6)
    lora = df[df.method == "lora"].set_index(["task", "model"])
    for i, r in df.iterrows():
        if (r.task, r.model) in lora.index:
            ref = lora.loc[(r.task, r.model)]
            df.loc[i, "drift_reduction"] = round(1 - r.drift / ref.drift, 6) if ref.drift else None
            df.loc[i, "task_kept"] = (
                round(r.task_score / ref.task_score, 6) if ref.task_score else None
            )
    df["pareto"] = _pareto(df)
    return df.sort_values(
        ["task", "model", "drift", "task_score"], ascending=[True, True, True, False]
    ).reset_index(drop=True)


def _pareto(df: pd.DataFrame) -> list[bool]:
    """On the front: no other row of the same task, model and drift judge drifts no more and
    scores no less, and is strictly better in one."""
    out = []
    for _, r in df.iterrows():
        # only rows whose drift the same judge measured are compared
        same = df[(df.task == r.task) & (df.model == r.model) & (df.drift_judge == r.drift_judge)]
        dominated = any(
            (o.drift <= r.drift and o.task_score >= r.task_score)
            and (o.drift < r.drift or o.task_score > r.task_score)
            for _, o in same.iterrows()
        )
        out.append(not dominated)
    return out


def table(df: pd.DataFrame) -> pd.DataFrame:
    """The columns people read."""
    return pd.DataFrame(
        {
            "task": df.task,
            "model": df.model,
            "method": df.method,
            "drift metric (judge)": [
                f"{r.drift_metric} ({r.drift_judge})" if r.drift_judge else r.drift_metric
                for r in df.itertuples()
            ],
            "drift (95% CI)": [_fmt(r.drift, r.drift_lo, r.drift_hi) for r in df.itertuples()],
            "task score (95% CI)": [
                _fmt(r.task_score, r.task_lo, r.task_hi) for r in df.itertuples()
            ],
            "drift reduction vs lora": [
                "" if pd.isna(r.get("drift_reduction")) else f"{r['drift_reduction']:+.0%}"
                for _, r in df.iterrows()
            ],
            "task kept vs lora": [
                "" if pd.isna(r.get("task_kept")) else f"{r['task_kept']:.0%}"
                for _, r in df.iterrows()
            ],
            "pareto": ["yes" if p else "" for p in df.pareto],
            "unscored": [f"{u:.1%}" for u in df.unscored_share],
            "seeds": df.seeds,
            "judge": df.judges,
            "backend": df.backend,
        }
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>grasp-bench leaderboard</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;font-size:14px}} th,td{{border:1px solid #ccc;padding:4px 8px}}
th{{cursor:pointer;background:#f3f3f3}} th.sorted-asc::after{{content:" \\25B2"}}
th.sorted-desc::after{{content:" \\25BC"}} img{{max-width:620px;margin:1em 0}}
</style></head><body>
<h1>grasp-bench leaderboard</h1>
<p>Drift on unrelated prompts against task score, relative to plain LoRA on the same task,
model, judge and seeds. 95% confidence intervals cluster by prompt. Click a column to sort.</p>
<table id="board"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
{plots}
<script>
document.querySelectorAll("#board th").forEach((th, col) => th.addEventListener("click", () => {{
  const body = document.querySelector("#board tbody");
  const asc = !th.classList.contains("sorted-asc");
  document.querySelectorAll("#board th")
    .forEach(h => h.classList.remove("sorted-asc", "sorted-desc"));
  th.classList.add(asc ? "sorted-asc" : "sorted-desc");
  const key = tr => {{ const t = tr.children[col].dataset.sort ?? tr.children[col].textContent;
                       const n = parseFloat(t); return isNaN(n) ? t : n; }};
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1))
    .forEach(tr => body.appendChild(tr));
}}));
</script></body></html>
"""


def _html(df: pd.DataFrame, shown: pd.DataFrame, plots: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    rows = []
    for (_, r), (_, s) in zip(df.iterrows(), shown.iterrows(), strict=True):
        cells = []
        for col, val in s.items():
            text = html.escape(str(val))
            sort = ""
            if col == "drift (95% CI)":
                sort = f' data-sort="{r.drift}"'
            elif col == "task score (95% CI)":
                sort = f' data-sort="{r.task_score}"'
            if col == "method":
                text = f'<a href="{html.escape(r.recipe)}">{text}</a>'
            if col == "judge":
                text = f'<a href="{html.escape(r.summary)}">{text}</a>'
            cells.append(f"<td{sort}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    imgs = "\n".join(
        f'<img src="{html.escape(p)}" alt="Pareto plot {html.escape(p)}">' for p in plots
    )
    return PAGE.format(head=head, body="\n".join(rows), plots=imgs)


def build_board(root: Path) -> dict[str, Path]:
    """Write leaderboard.csv, README.md, plots/*.png and index.html under ``root``."""
    root = Path(root)
    df = collect(root)
    out = {"csv": root / "leaderboard.csv", "md": root / "README.md", "html": root / "index.html"}
    if df.empty:
        raise ValueError(f"{root}: no submissions to build a board from")
    shown = table(df)
    atomic_write_text(out["csv"], df.to_csv(index=False))
    plots = []
    for (task, model), part in df.groupby(["task", "model"], sort=True):
        name = f"plots/{task}--{model.replace('/', '-')}.png"
        png = tradeoff_png(part, f"{task} · {model}", "task_score", part[part.pareto])
        atomic_write_bytes(root / name, png)
        plots.append(name)
    md = [
        "# grasp-bench leaderboard",
        "",
        "Built by `grasp-bench leaderboard build` from `submissions/`; do not edit by hand.",
        "",
        shown.to_markdown(index=False),
        "",
    ]
    md += [f"![{p}]({p})" for p in plots]
    atomic_write_text(out["md"], "\n".join(md) + "\n")
    atomic_write_text(out["html"], _html(df, shown, plots))
    atomic_write_text(
        root / "board.json",
        json.dumps(json.loads(df.to_json(orient="records")), indent=2, sort_keys=True) + "\n",
    )
    return out
