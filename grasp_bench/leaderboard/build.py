"""``grasp-bench leaderboard build``: the board from the submissions, deterministically (the
same submissions give the same bytes): one section per task with that task's own metric names,
Markdown, CSV (all tasks and one per task), a Pareto plot per task, model and drift judge, and
a static HTML page with sortable, filterable tables.

Nothing here branches on a task's name: headers, explanations and directions come from the
task's registered ``TaskSpec``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from grasp_bench.effect_gate import effect_gate
from grasp_bench.judge.base import judge_name
from grasp_bench.leaderboard.calibration import (
    NOT_CALIBRATED,
    CalibrationFile,
    find_calibration,
    find_metric_calibration,
    load_calibrations,
    rubrics_graded,
)
from grasp_bench.leaderboard.page import (
    BUILD_COMMAND,
    VALIDATE_COMMAND,
    Cell,
    Column,
    Link,
    Section,
    Study,
    judges_table,
    render_html,
    render_markdown,
)
from grasp_bench.leaderboard.schema import SampleRecord, Summary
from grasp_bench.leaderboard.submit import slug
from grasp_bench.leaderboard.validate import submission_dirs
from grasp_bench.locks import exclusive
from grasp_bench.prevalence import JudgeError, corrected_rate
from grasp_bench.report import tradeoff_png
from grasp_bench.stats import paired_difference
from grasp_bench.store import atomic_write_bytes, atomic_write_text
from grasp_bench.taskspec import MetricSpec, get_task

__all__ = ["BUILD_COMMAND", "VALIDATE_COMMAND", "build_board", "collect", "table"]

REFERENCE = "lora"
# columns of collect() that only the page uses (not written to the CSV or board.json)
_INTERNAL = ["drift_calibrations", "task_calibrations"]


def _fmt(mean, lo, hi) -> str:
    return "n/a" if mean is None or pd.isna(mean) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _samples(sub: Path) -> pd.DataFrame:
    rows = []
    for line in (sub / "samples.jsonl").read_text().splitlines():
        if line.strip():
            s = SampleRecord.model_validate_json(line)
            rows += [
                {
                    "prompt_id": s.prompt_id,
                    "seed": s.seed,
                    "split": s.split,
                    "metric": m,
                    "value": sc.value,
                    "judge": json.dumps(sc.judge, sort_keys=True),
                }
                for m, sc in s.scores.items()
            ]
    return pd.DataFrame(rows, columns=["prompt_id", "seed", "split", "metric", "value", "judge"])


def _calibrations(
    samples: pd.DataFrame, task: str, files: dict[str, CalibrationFile], role: str = "drift"
) -> tuple[tuple[str, str | None], ...]:
    """(text, calibration file) for each judge that made the drift (or task) number: its
    calibration on that metric's first rubric, or "not calibrated"."""
    spec = get_task(task)
    metric = spec.drift_metric if role == "drift" else spec.task_metric
    made = samples[(samples.metric == metric.name) & (samples.split == role)]
    identities = [json.loads(i) for i in sorted(set(made.judge))]
    out = []
    for identity in identities:
        rubric = metric.rubrics[0]
        graded = rubrics_graded(identity, rubric)
        cal = find_calibration(files, identity, rubric, task, metric.name, graded)
        text, path = (cal.summary(), cal.path) if cal else (NOT_CALIBRATED, None)
        if len(identities) > 1:  # a row whose drift several judges made names each
            text = f"{judge_name(identity)}: {text}"
        out.append((text, path))
    return tuple(out)


def collect(root: Path, calibrations: dict[str, CalibrationFile] | None = None) -> pd.DataFrame:
    """One row per submission, with paired differences against plain LoRA on the same prompts
    and the drift judge's calibration (from ``<root>/calibration/*.json`` unless given)."""
    root = Path(root)
    files = load_calibrations(root) if calibrations is None else calibrations
    rows, frames = [], {}
    for sub in submission_dirs(root):
        s = Summary.model_validate_json((sub / "summary.json").read_text())
        frames[(s.task, s.model, s.method)] = samples = _samples(sub)
        rel = sub.relative_to(root).as_posix()
        cals = _calibrations(samples, s.task, files)
        task_cals = _calibrations(samples, s.task, files, role="task")
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
                "n_drift": s.drift.n,
                "n_task": s.task_score.n,
                "coherence": s.coherence.mean if s.coherence else None,
                "unscored_share": s.unscored_share,
                "seeds": ",".join(map(str, s.seeds)),
                "n_seeds": len(s.seeds),
                "n": s.n_samples,
                "judges": "; ".join(s.judges),
                "drift_metric": s.drift_metric or get_task(s.task).drift_metric.name,
                "drift_judge": s.drift_judge or "",
                "drift_calibration": "; ".join(text for text, _ in cals),
                "drift_calibration_file": "; ".join(path or "" for _, path in cals),
                "drift_calibrations": cals,
                "judge_canaries": "; ".join(s.judge_canaries),
                "training_data": s.training_data,
                "task_metric": s.task_metric or get_task(s.task).task_metric.name,
                "task_judge": s.task_judge or "",
                "task_calibration": "; ".join(text for text, _ in task_cals),
                "task_calibration_file": "; ".join(path or "" for _, path in task_cals),
                "task_calibrations": task_cals,
                "backend": s.backend,
                "recipe": f"{rel}/recipe.yaml",
                "summary": f"{rel}/summary.json",
                "samples": f"{rel}/samples.jsonl",
                "method_card": f"{rel}/method_card.json"
                if (sub / "method_card.json").is_file()
                else "",
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for i, r in df.iterrows():
        ref = frames.get((r.task, r.model, REFERENCE))
        mine = frames[(r.task, r.model, r.method)]
        spec = get_task(r.task)
        if ref is None or r.method == REFERENCE:
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
    lora = df[df.method == REFERENCE].set_index(["task", "model"])
    for i, r in df.iterrows():
        if (r.task, r.model) in lora.index:
            ref = lora.loc[(r.task, r.model)]
            df.loc[i, "drift_reduction"] = round(1 - r.drift / ref.drift, 6) if ref.drift else None
            df.loc[i, "task_kept"] = (
                round(r.task_score / ref.task_score, 6) if ref.task_score else None
            )
    df["drift_corrected"] = [
        _corrected_drift(frames[(r.task, r.model, r.method)], r.task, files)
        for r in df.itertuples()
    ]
    df["pareto"] = _pareto(df)
    for (task, model), idx in df.groupby(["task", "model"]).groups.items():
        gate = effect_gate(frames.get((task, model, "base")), frames.get((task, model, REFERENCE)),
                           get_task(task).drift_metric)  # fmt: skip
        for key, value in gate.items():
            df.loc[idx, f"gate_{key}"] = value
        if gate["verdict"] != "drifts":  # no effect to reduce: nothing is ranked or credited
            df.loc[idx, "pareto"] = False
            df.loc[idx, "drift_reduction"] = None
    # rows whose drift another judge measured are never ranked together: they sort apart
    return df.sort_values(
        ["task", "model", "drift_judge", "drift", "task_score", "method"],
        ascending=[True, True, True, True, False, True],
    ).reset_index(drop=True)


def _corrected_drift(samples: pd.DataFrame, task: str, files: dict[str, CalibrationFile]) -> str:
    """The drift rate corrected for its judge's error (Rogan-Gladen, ``prevalence.py``), from
    the judge's calibration of the drift metric; or why there is none."""
    metric = get_task(task).drift_metric
    made = samples[(samples.metric == metric.name) & (samples.split == "drift")].dropna(
        subset=["value"]
    )
    if not metric.is_rate or made.empty:
        return "n/a (not a rate)" if not metric.is_rate else "n/a"
    identities = sorted(set(made.judge))
    if len(identities) != 1:
        return "not correctable (several judges)"
    judge = json.loads(identities[0])
    graded = rubrics_graded(judge, metric.rubrics[0])
    found = find_metric_calibration(files, judge, metric.rubrics[0], metric.name, task, graded)
    if found is None:
        return f"not correctable (no calibration of this metric graded on {' + '.join(graded)})"
    _, entry = found
    stats = (entry.recall, entry.specificity, entry.reference_rate)
    if entry.n is None or any(x is None or x.mean is None for x in stats):
        return "not correctable (calibration lacks recall, specificity or rate: recalibrate)"
    error = JudgeError.from_rates(entry.n, entry.reference_rate.mean, entry.recall.mean,
                                  entry.specificity.mean)  # fmt: skip
    return corrected_rate(made.value.to_numpy(), made.prompt_id.to_numpy(), error).text()


def _sign(metric: MetricSpec) -> int:
    """+1 where higher is better, so that ``sign * value`` is larger when better."""
    return 1 if metric.higher_is_better else -1


def _pareto(df: pd.DataFrame) -> list[bool]:
    """On the front: no other row of the same task, model and drift judge is at least as good
    on drift and on task score, and strictly better in one (directions from the TaskSpec)."""
    out = []
    for _, r in df.iterrows():
        spec = get_task(r.task)
        sd, st = _sign(spec.drift_metric), _sign(spec.task_metric)
        # only rows whose drift the same judge measured are compared
        same = df[(df.task == r.task) & (df.model == r.model) & (df.drift_judge == r.drift_judge)]
        dominated = any(
            (sd * o.drift >= sd * r.drift and st * o.task_score >= st * r.task_score)
            and (sd * o.drift > sd * r.drift or st * o.task_score > st * r.task_score)
            for _, o in same.iterrows()
        )
        out.append(not dominated)
    return out


def _relative(value, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def table(df: pd.DataFrame) -> pd.DataFrame:
    """One flat table of every task (what the terminal prints); the board's sections name each
    task's own metrics instead."""
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
                _relative(r.get("drift_reduction"), "+.0%") for _, r in df.iterrows()
            ],
            "task kept vs lora": [_relative(r.get("task_kept"), ".0%") for _, r in df.iterrows()],
            "pareto": ["yes" if p else "" for p in df.pareto],
            "unscored": [f"{u:.1%}" for u in df.unscored_share],
            "seeds": df.n_seeds,
            "drift calibration": df.drift_calibration,
            "task calibration": df.task_calibration,
            "backend": df.backend,
        }
    )


def _better(metric: MetricSpec) -> str:
    return "higher is better" if metric.higher_is_better else "lower is better"


def _columns(task: str) -> list[Column]:
    """The columns of a task's section, each with its one-line explanation."""
    spec = get_task(task)
    drift, skill = spec.drift_metric, spec.task_metric
    ci = "Mean with its 95% CI, clustered by prompt and pooled over seeds."
    return [
        Column("model", "The base model the method fine-tuned."),
        Column(
            "method",
            "The method; its name links to its method card (hyper-parameters, versions), "
            "'recipe' to the recipe as run.",
        ),
        Column(
            f"{drift.name} (drift)",
            f"{drift.description or drift.name} On the drift (unrelated) prompts; "
            f"{_better(drift)}. {ci}",
        ),
        Column(
            "drift judge (calibration)",
            f"The judge that made the {drift.name} number, and its agreement with human "
            f"labels on the '{drift.rubrics[0]}' rubric (Spearman ρ with 95% CI, AUROC, "
            "Cohen's κ, reference items n); rows of different drift judges are never "
            "ranked together.",
        ),
        Column(
            "judge canaries",
            "Each LLM-judged rubric's fixed canary answers, graded at the run's start against"
            " the same judge's first grades: stable, or JUDGE CHANGED with the canaries that"
            " moved (an API model updated behind its name, another template or server);"
            " 'none' where only offline judges graded.",
        ),
        Column(
            f"{drift.name} corrected for the judge",
            "The drift rate corrected for its judge's sensitivity and specificity at the"
            " metric's threshold (Rogan-Gladen, from the judge's calibration of this metric),"
            " 95% CI over prompts and the calibration; 'not correctable' where the judge's"
            " sens + spec - 1 is below 0.2 or no calibration gives them.",
        ),
        Column(
            f"{skill.name} (task)",
            f"{skill.description or skill.name} On held-out task prompts; {_better(skill)}. {ci}",
        ),
        Column(
            "task judge (calibration)",
            f"The judge that made the {skill.name} number, and its agreement with human "
            f"labels on the '{skill.rubrics[0]}' rubric.",
        ),
        Column(
            f"{drift.name} reduction vs {REFERENCE}",
            f"1 - {drift.name} / {drift.name} of plain {REFERENCE} on the same model "
            "(+100% removes all drift).",
        ),
        Column(
            f"{skill.name} kept vs {REFERENCE}",
            f"{skill.name} / {skill.name} of plain {REFERENCE} on the same model.",
        ),
        Column(
            "Pareto",
            "yes: no row of the same model and drift judge is at least as good on both "
            "numbers and better on one.",
        ),
        Column(
            "seeds",
            "How many training seeds are pooled (the seed ids are in the tooltip and CSV).",
        ),
        Column("n drift/task", "Scored samples behind each number."),
        Column("unscored", "Share of scores the judges could not give (with a reason)."),
        Column("backend", "Generation back end (vllm or hf)."),
        Column("files", "The submission's summary and per-sample records."),
    ]


def _canaries(lines: str) -> str:
    """The canary check as a reader should see it: a drifted judge is loud."""
    if not lines:
        return "none"
    return f"JUDGE CHANGED: {lines}" if "drifted" in lines else lines


def _cells(r: pd.Series) -> list[Cell]:
    seeds = r.seeds.split(",")
    calibrations = tuple(Link(text, path) for text, path in r.drift_calibrations)
    return [
        Cell(r.model),
        Cell(
            r.method,
            href=r.method_card or None,
            title=r.description or None,
            links=(Link("recipe", r.recipe),),
            sort=r.method,
        ),
        Cell(_fmt(r.drift, r.drift_lo, r.drift_hi), sort=r.drift),
        Cell(r.drift_judge or "n/a", notes=calibrations),
        Cell(_canaries(r.get("judge_canaries") or "")),
        Cell(r.drift_corrected),
        Cell(_fmt(r.task_score, r.task_lo, r.task_hi), sort=r.task_score),
        Cell(r.task_judge or "n/a", notes=tuple(Link(t, p) for t, p in r.task_calibrations)),
        Cell(_relative(r.get("drift_reduction"), "+.0%"), sort=r.get("drift_reduction")),
        Cell(_relative(r.get("task_kept"), ".0%"), sort=r.get("task_kept")),
        Cell("yes" if r.pareto else ""),
        Cell(
            str(len(seeds)),
            title=f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}",
            sort=len(seeds),
        ),
        Cell(f"{r.n_drift}/{r.n_task}", sort=r.n_drift),
        Cell(f"{r.unscored_share:.1%}", sort=r.unscored_share),
        Cell(r.backend),
        Cell("", links=(Link("summary", r.summary), Link("samples", r.samples))),
    ]


def _write_plots(root: Path, task: str, part: pd.DataFrame) -> list[Link]:
    """One plot per model and drift judge (the judge in the name only where a model has
    several), titled with both metrics and their judges."""
    spec = get_task(task)
    drift, skill = spec.drift_metric, spec.task_metric
    plots = []
    for model, by_model in part.groupby("model", sort=True):
        judges = sorted(set(by_model.drift_judge))
        for judge in judges:
            rows = by_model[by_model.drift_judge == judge]
            name = f"plots/{task}--{slug(model)}"
            name += f"--{slug(judge)}.png" if len(judges) > 1 else ".png"
            task_judges = ",".join(sorted({j for j in rows.task_judge if j})) or "n/a"
            title = (
                f"{task} · {model}\n{drift.name} (drift, judge {judge or 'n/a'}) vs "
                f"{skill.name} (task, judge {task_judges})"
            )
            png = tradeoff_png(
                rows,
                title,
                "task_score",
                rows[rows.pareto],
                xlabel=f"{drift.name} on drift prompts ({_better(drift)})",
                ylabel=f"{skill.name} on task prompts ({_better(skill)})",
            )
            atomic_write_bytes(root / name, png)
            plots.append(Link(title.replace("\n", ": "), name))
    return plots


def _gate_text(part: pd.DataFrame) -> str:
    """The effect gate's verdict per model, the first thing a task section says."""
    lines = part.drop_duplicates("model").sort_values("model")
    return " ".join(f"{r.model}: {r.gate_text}" for r in lines.itertuples())


def _data_note(part: pd.DataFrame) -> str:
    """What the section's methods trained on, said before the table (smoke data is loud)."""
    kinds = sorted(set(part.training_data))
    return "Training data: " + "; ".join(kinds) + "."


def _csv(df: pd.DataFrame) -> str:
    return df.drop(columns=_INTERNAL).to_csv(index=False)


def _remove_stale(root: Path, folder: str, suffix: str, written: set[str]) -> None:
    """The board owns these folders: what this build did not write is from an older one."""
    for path in sorted((root / folder).glob(f"*{suffix}")):
        if path.relative_to(root).as_posix() not in written:
            path.unlink()


def build_board(root: Path) -> dict[str, Path]:
    """Write leaderboard.csv, csv/<task>.csv, README.md, plots/*.png, board.json and
    index.html under ``root``, holding the board's lock (a submit or another build on it fails
    at once). Each file is replaced atomically; after a crash, the same build rewrites them all."""
    with exclusive(root, "leaderboard"):
        return _build_board(Path(root))


def _build_board(root: Path) -> dict[str, Path]:
    calibrations = load_calibrations(root)
    df = collect(root, calibrations)
    out = {"csv": root / "leaderboard.csv", "md": root / "README.md", "html": root / "index.html"}
    if df.empty:
        raise ValueError(f"{root}: no submissions to build a board from")
    atomic_write_text(out["csv"], _csv(df))
    sections, written = [], set()
    for task, part in df.groupby("task", sort=True):
        spec = get_task(task)
        csv = f"csv/{task}.csv"
        atomic_write_text(root / csv, _csv(part))
        plots = _write_plots(root, task, part)
        written |= {csv, *(p.href for p in plots)}
        sections.append(
            Section(
                task=task,
                description=spec.description,
                gate=_gate_text(part),
                data_note=_data_note(part),
                columns=_columns(task),
                rows=[_cells(r) for _, r in part.iterrows()],
                filters={
                    "model": list(part.model),
                    "drift judge": [j or "n/a" for j in part.drift_judge],
                },
                plots=plots,
                csv=csv,
            )
        )
    _remove_stale(root, "plots", ".png", written)
    _remove_stale(root, "csv", ".csv", written)
    judges = judges_table(calibrations)
    studies = _studies(root)
    atomic_write_text(out["md"], render_markdown(sections, judges, studies))
    atomic_write_text(out["html"], render_html(sections, judges, studies))
    records = json.loads(df.drop(columns=_INTERNAL).to_json(orient="records"))
    atomic_write_text(root / "board.json", json.dumps(records, indent=2, sort_keys=True) + "\n")
    return out


POSITIVE_CONTROL = "positive_control"  # grasp-bench implicit-report ... --out <board>/<this>


def _studies(root: Path) -> list[Study]:
    """The implicit-factor positive control, where its pooled report sits in the board: the
    gate's verdict first, then every metric pooled over teachers with hierarchical intervals."""
    import html as html_lib

    from markupsafe import Markup

    folder = root / POSITIVE_CONTROL
    if not (folder / "implicit.json").exists():
        return []
    payload = json.loads((folder / "implicit.json").read_text())
    table = pd.DataFrame(payload["rows"])
    gates = payload["gates"]
    verdicts = [f"<li><b>{html_lib.escape(k)}</b>: {html_lib.escape(v['verdict'])}</li>"
                for k, v in gates.items()]  # fmt: skip
    pooled = table[table.teacher == "pooled"].copy()
    for col in ("mean", "lo", "hi"):
        pooled[col] = pooled[col].map(lambda x: f"{x:.3f}")
    wanted = ("metric", "method", "mean", "lo", "hi", "n_teacher", "n_seed", "n_prompt_id")
    ranked = gates.get("pooled", {}).get("passed", False)  # no comparison without the effect
    extra = ("vs_lora", "vs_lora_lo", "vs_lora_hi") if ranked else ()
    keep = [c for c in (*wanted, *extra) if c in pooled]
    body = (
        "<p>Effect gate (plain LoRA vs the task-only control, paired hierarchical bootstrap):</p>"
        f"<ul>{''.join(verdicts)}</ul>"
        + pooled[keep].to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="")
    )
    md = (folder / "implicit.md").read_text().replace("\n# ", "\n### ").replace("\n## ", "\n### ")
    md = md.split("\n", 1)[1] if md.startswith("# ") else md
    files = [
        Link(name, f"{POSITIVE_CONTROL}/{name}")
        for name in ("implicit.md", "implicit.csv", "implicit.json")
        if (folder / name).exists()
    ]
    plot = f"{POSITIVE_CONTROL}/implicit.png"  # the report always writes it
    studies = [
        Study(
            anchor="positive-control",
            title="Positive control: implicit factor",
            markdown=md.strip(),
            html=Markup(body),
            files=files,
            plot=plot,
        )
    ]
    if (folder / "removal.md").exists():
        studies.append(_removal_study(folder, ranked))
    for held_out in sorted(folder.glob("held-out-*/removal.md")):  # teachers the rule never saw
        studies.append(_removal_study(held_out.parent, ranked, held_out.parent.name))
    return studies


def _removal_study(folder: Path, ranked: bool, held_out: str = "") -> Study:
    """What removes the implicit factor (GRASP removals and directions against plain LoRA and
    the control): shown only where the effect gate passed, as every comparison on the board.
    ``held_out``: the folder of a held-out teacher's report (``held-out-<teacher>``)."""
    from markupsafe import Markup

    anchor = f"removal-{held_out}" if held_out else "removal"
    which = held_out.removeprefix("held-out-")
    title = "Positive control: what removes it"
    if which == "pooled":
        title += " (held-out teachers pooled)"
    elif which:
        title += f" (held-out teacher {which})"
    prefix = f"{POSITIVE_CONTROL}/{held_out}/" if held_out else f"{POSITIVE_CONTROL}/"
    if not ranked:
        text = "Not shown: the positive control's effect gate did not pass, so nothing is compared."
        return Study(anchor, title, text, Markup(f"<p>{text}</p>"), [])
    md = (folder / "removal.md").read_text().replace("\n## ", "\n### ")
    md = md.split("\n", 1)[1] if md.startswith("# ") else md
    table = pd.read_csv(folder / "removal.csv")
    cols = [c for c in ("method", "removal", "source", "k", "transfer_mean", "transfer_lo",
                        "transfer_hi", "reduction", "task_kl_mean", "task_kl_vs_lora",
                        "base_fit_mean", "n_seeds")
            if c in table]  # fmt: skip
    files = [
        Link(name, f"{prefix}{name}")
        for name in ("removal.md", "removal.csv", "readings.csv")
        if (folder / name).exists()
    ]
    return Study(
        anchor=anchor,
        title=title,
        markdown=md.strip(),
        html=Markup(table[cols].to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="")),
        files=files,
        plot=f"{prefix}removal.png",  # the report always writes it
    )
