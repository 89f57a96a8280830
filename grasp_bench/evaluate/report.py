"""Results of one run: a trade-off table (pandas) with 95% CIs, written as CSV, JSON,
Markdown and a PNG plot of drift against task score."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from grasp_bench.core.stats import mean_ci, min_detectable_difference, paired_difference
from grasp_bench.core.store import atomic_write_bytes, atomic_write_text
from grasp_bench.data.taskspec import TaskSpec, is_excluded
from grasp_bench.evaluate.effect_gate import effect_gate
from grasp_bench.evaluate.judge.base import judge_name


def _fmt(mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def build_table(
    spec: TaskSpec,
    records: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    reference: str = "lora",
) -> pd.DataFrame:
    """One row per method, seeds pooled; CIs cluster by prompt across samples and seeds. The
    headline columns are the task's drift metric on the drift split and its task metric on the
    task split, each with the judge that made it."""
    drift_metric, task_metric = spec.drift_metric.name, spec.task_metric.name
    scores = pd.DataFrame(records)
    meta = pd.DataFrame(targets).set_index("target")
    scores["method"] = scores["target"].map(meta["method"])
    scored = scores[scores["value"].notna()]
    drift = scored[(scored.metric == drift_metric) & (scored.split == "drift")]
    skill = scored[(scored.metric == task_metric) & (scored.split == "task")]
    rows = []
    order = list(dict.fromkeys(meta["method"]))
    extra_metrics = [
        m for m in dict.fromkeys(scores["metric"]) if m not in (drift_metric, task_metric)
    ]
    rates = {m.name: m.is_rate for m in spec.metrics}
    for method in order:
        d, t = drift[drift.method == method], skill[skill.method == method]
        de = mean_ci(d.value, d.prompt_id, binary=spec.drift_metric.is_rate)
        te = mean_ci(t.value, t.prompt_id, binary=spec.task_metric.is_rate)
        all_m = scores[scores.method == method]
        info = meta[meta.method == method].iloc[0]
        row = {
            "method": method,
            "drift_metric": drift_metric,
            "task_metric": task_metric,
            "seeds": ",".join(str(s) for s in sorted(meta[meta.method == method]["seed"])),
            "drift": de.mean,
            "drift_lo": de.lo,
            "drift_hi": de.hi,
            "task": te.mean,
            "task_lo": te.lo,
            "task_hi": te.hi,
            "n_drift": de.n,
            "n_task": te.n,
            "unscored": int(unscored_mask(all_m).sum()),
            "unscored_share": float(unscored_mask(all_m).mean()) if len(all_m) else 0.0,
            "excluded": int(excluded_mask(all_m).sum()),
            "backend": info["backend"],
            "judge": _judges(d),
            "task_judge": _judges(t),
        }
        for metric in extra_metrics:
            m = scored[(scored.metric == metric) & (scored.method == method)]
            est = mean_ci(m.value, m.prompt_id, binary=rates.get(metric, False))
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = est.mean, est.lo, est.hi
            row[f"{metric}_judge"] = _judges(m)
        for ref in ("base", reference):
            if ref in order and ref != method:
                r_d, r_t = drift[drift.method == ref], skill[skill.method == ref]
                dd = paired_difference(d, r_d, value="value")
                dt = paired_difference(t, r_t, value="value")
                row[f"drift_vs_{ref}"] = dd.mean
                row[f"drift_vs_{ref}_lo"], row[f"drift_vs_{ref}_hi"] = dd.lo, dd.hi
                # the smallest true difference this comparison detects (80% power, 5% level)
                row[f"drift_mdd_vs_{ref}"] = min_detectable_difference((dd.hi - dd.lo) / 2)
                row[f"task_vs_{ref}"] = dt.mean
                row[f"task_vs_{ref}_lo"], row[f"task_vs_{ref}_hi"] = dt.lo, dt.hi
        rows.append(row)
    out = pd.DataFrame(rows)
    frames = {
        m: scores[scores.method == m].assign(seed=lambda f: f.target.map(meta["seed"]))
        for m in ("base", reference)
        if m in order
    }
    gate = effect_gate(frames.get("base"), frames.get(reference), spec.drift_metric)
    out["gate_verdict"], out["gate_text"] = gate["verdict"], gate["text"]
    return out


def excluded_mask(records: pd.DataFrame) -> pd.Series:
    """Samples a metric's convention leaves out (CODE / REFUSAL / incoherent): not failures."""
    reasons = records["reason"] if "reason" in records else pd.Series(None, index=records.index)
    return records["value"].isna() & reasons.map(is_excluded)


def unscored_mask(records: pd.DataFrame) -> pd.Series:
    """Samples no judge could score (with a reason), exclusions not counted."""
    return records["value"].isna() & ~excluded_mask(records)


def _judges(records: pd.DataFrame) -> str:
    """The judges that made these scores, by name (several only if a run mixed them)."""
    return ",".join(sorted({judge_name(j) for j in records.judge})) if len(records) else ""


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """The columns people read: each score with its 95% CI."""
    drift_name = f"drift: {df['drift_metric'].iloc[0]}" if "drift_metric" in df else "drift"
    task_name = f"task: {df['task_metric'].iloc[0]}" if "task_metric" in df else "task"
    out = pd.DataFrame(
        {
            "method": df["method"],
            f"{drift_name} (95% CI)": [
                _fmt(r.drift, r.drift_lo, r.drift_hi) for r in df.itertuples()
            ],
            f"{task_name} (95% CI)": [_fmt(r.task, r.task_lo, r.task_hi) for r in df.itertuples()],
        }
    )
    if "judge" in df:
        out["drift judge"] = df["judge"]
    for ref in ("lora",):
        if f"drift_vs_{ref}" in df:
            out[f"Δdrift vs {ref}"] = [
                _fmt(r[f"drift_vs_{ref}"], r[f"drift_vs_{ref}_lo"], r[f"drift_vs_{ref}_hi"])
                for _, r in df.iterrows()
            ]
    for col in df.columns:
        if col not in ("drift", "task") and f"{col}_judge" in df.columns:  # extra metrics
            out[f"{col} (95% CI)"] = [
                _fmt(r[col], r[f"{col}_lo"], r[f"{col}_hi"]) for _, r in df.iterrows()
            ]
    out["n (drift/task)"] = [f"{r.n_drift}/{r.n_task}" for r in df.itertuples()]
    out["unscored"] = df["unscored"]
    # a count: "0" read as a seed id looks like "no seeds"
    out["seeds"] = [len(str(ids).split(",")) for ids in df["seeds"]]
    return out


def tradeoff_figure(
    df: pd.DataFrame,
    title: str,
    task_col: str = "task",
    front: pd.DataFrame | None = None,
    xlabel: str = "drift on unrelated prompts (lower is better)",
    ylabel: str = "task score (higher is better)",
):
    """The trade-off plot as a matplotlib figure and its method labels (for tests that check
    the labels stay apart); ``tradeoff_png`` renders it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from adjustText import adjust_text

    df = df.dropna(subset=["drift", task_col])  # a point without both numbers has no place
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
    colours, markers = plt.get_cmap("tab10"), "os^Dv"  # past ten methods the marker changes
    texts = []
    for i, (_, r) in enumerate(df.iterrows()):
        y, lo, hi = r[task_col], r["task_lo"], r["task_hi"]
        colour = colours(i % colours.N)
        ax.errorbar(
            r.drift,
            y,
            xerr=[[max(0.0, r.drift - r.drift_lo)], [max(0.0, r.drift_hi - r.drift)]],
            yerr=[[max(0.0, y - lo)], [max(0.0, hi - y)]],
            fmt=markers[i // colours.N % len(markers)],
            capsize=3,
            color=colour,
            alpha=0.85,
        )
        texts.append(ax.text(r.drift, y, r.method, fontsize=8, color=colour))
    if front is not None and len(front):
        front = front.sort_values("drift")
        ax.step(
            front.drift,
            front[task_col],
            where="post",
            color="grey",
            ls="--",
            lw=1,
            label="Pareto front",
        )
        ax.legend(fontsize=7, loc="upper left")
    # zoomed to the data (intervals included), so points that differ by little stay apart
    x0, x1 = _padded(df.drift, df.drift_lo, df.drift_hi)
    y0, y1 = _padded(df[task_col], df.task_lo, df.task_hi)
    # room on the right for the labels of points at the edge
    ax.set_xlim(x0, x1 + 0.25 * (x1 - x0))
    ax.set_ylim(y0, y1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    if texts:
        adjust_text(
            texts,
            x=list(df.drift),
            y=list(df[task_col]),
            ax=ax,
            iter_lim=1000,  # an iteration budget, not a time limit: the same bytes every build
            expand=(1.2, 1.5),
            force_text=(0.3, 0.6),
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5},
        )
    return fig, texts


def _padded(*columns: pd.Series) -> tuple[float, float]:
    """The range of the values and their intervals (an undefined bound left out) with a 10%
    margin, at least 0.02 on each side."""
    values = pd.concat(columns).astype(float).dropna()
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = max(0.1 * (hi - lo), 0.02)
    return lo - pad, hi + pad


def tradeoff_png(
    df: pd.DataFrame,
    title: str,
    task_col: str = "task",
    front: pd.DataFrame | None = None,
    xlabel: str = "drift on unrelated prompts (lower is better)",
    ylabel: str = "task score (higher is better)",
) -> bytes:
    """Drift against task score with 95% CI error bars (and the Pareto front, if given). Each
    point is labelled with its method, and adjustText moves the labels off each other."""
    from grasp_bench.core.figures import png_bytes

    fig, _ = tradeoff_figure(df, title, task_col, front, xlabel, ylabel)
    return png_bytes(fig, dpi=None)


def write_report(
    df: pd.DataFrame, out_dir: Path, title: str, meta: dict[str, Any]
) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out_dir / "results.csv",
        "json": out_dir / "results.json",
        "md": out_dir / "results.md",
        "png": out_dir / "tradeoff.png",
    }
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    payload = {"meta": meta, "rows": json.loads(df.to_json(orient="records"))}
    atomic_write_text(paths["json"], json.dumps(payload, indent=2, sort_keys=True) + "\n")
    md = f"# {title}\n\n"
    if "gate_text" in df and len(df):
        md += f"**{df.gate_text.iloc[0]}**\n\n"  # before anything is compared
    md += display_table(df).to_markdown(index=False) + "\n\n"
    for line in meta.get("judge_canaries", []):
        md += f"Judge canaries: {line}.\n\n"
    if "drift_mdd_vs_lora" in df and df.drift_mdd_vs_lora.notna().any():
        mdd = df.drift_mdd_vs_lora.dropna()
        md += (
            f"Minimum detectable drift difference against lora at these sample sizes (80% power,"
            f" 5% level): {mdd.min():.3f} to {mdd.max():.3f}; a smaller true difference would"
            " usually be missed.\n\n"
        )
    md += (
        "drift: the spurious factor on unrelated prompts; task: the trained skill on held-out "
        "task prompts (see docs/usage.md for each task's metrics). 95% CIs cluster by prompt "
        f"(pooled over seeds). Drift judged by {_first(df, 'judge')}, task by "
        f"{_first(df, 'task_judge')}.\n"
    )
    atomic_write_text(paths["md"], md)
    atomic_write_bytes(paths["png"], tradeoff_png(df, title))
    return paths


def _first(df: pd.DataFrame, col: str) -> str:
    return ",".join(sorted({str(v) for v in df[col] if v})) if col in df else ""


def print_table(df: pd.DataFrame, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = display_table(df)
    table = Table(title=title)
    for col in shown.columns:
        table.add_column(str(col))
    for _, row in shown.iterrows():
        table.add_row(*[str(v) for v in row])
    console = Console(width=160)
    console.print(table)
    if "gate_text" in df and len(df):
        console.print(df.gate_text.iloc[0], highlight=False)
