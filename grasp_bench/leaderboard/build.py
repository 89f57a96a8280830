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

from grasp_bench.core.locks import exclusive
from grasp_bench.core.store import atomic_write_bytes, atomic_write_text
from grasp_bench.data.taskspec import MetricSpec, get_task
from grasp_bench.evaluate.report import tradeoff_png
from grasp_bench.leaderboard.calibration import (
    load_calibrations,
)
from grasp_bench.leaderboard.collect import _INTERNAL, REFERENCE, collect
from grasp_bench.leaderboard.page import (
    BUILD_COMMAND,
    VALIDATE_COMMAND,
    Cell,
    Column,
    Link,
    Section,
    judges_table,
)
from grasp_bench.leaderboard.page_html import render_html
from grasp_bench.leaderboard.page_markdown import render_markdown
from grasp_bench.leaderboard.studies import positive_control_studies
from grasp_bench.leaderboard.submit import slug

__all__ = ["BUILD_COMMAND", "VALIDATE_COMMAND", "build_board", "collect", "table"]


def _fmt(mean, lo, hi) -> str:
    return "n/a" if mean is None or pd.isna(mean) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


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
    studies = positive_control_studies(root)
    atomic_write_text(out["md"], render_markdown(sections, judges, studies))
    atomic_write_text(out["html"], render_html(sections, judges, studies))
    records = json.loads(df.drop(columns=_INTERNAL).to_json(orient="records"))
    atomic_write_text(root / "board.json", json.dumps(records, indent=2, sort_keys=True) + "\n")
    return out
