"""A calibration written (statistics JSON and per-item grades) and printed (one table per kind
of row, each statistic with its interval)."""

from __future__ import annotations

import math
from pathlib import Path

from grasp_bench.evaluate.judge.calibrate import _SIDE_TEXT, Calibration
from grasp_bench.evaluate.judge.labels import LabelFile, _num


def write_calibration(result: Calibration, labels: LabelFile, out: Path) -> Path:
    """The statistics to ``out`` and every item's grades to ``<stem>.items.jsonl`` beside it,
    each atomically (the JSON last: it is what readers look for)."""
    from grasp_bench.core.store import atomic_write_json, atomic_write_jsonl

    out = Path(out)
    items = out.with_name(f"{out.stem}.items.jsonl")
    atomic_write_jsonl(items, result.items)
    atomic_write_json(out, result.to_json(labels))
    return items


_SHOWN = {
    "spearman": "Spearman",
    "auroc": "AUROC",
    "precision": "precision",
    "recall": "recall",
    "kappa": "Cohen's kappa",
    "reference_rate": "reference rate",
    "judged_rate": "judged rate",
}


def print_calibration(result: Calibration, judges: str) -> None:
    """One table per kind of row (rubrics, task metrics): a statistic per line, a column per
    rubric, each value with its 95% interval; then the notes."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result.rubrics:
        t = Table(title=f"{judges} judge vs reference labels")
        t.add_column("")
        for rubric in result.rubrics:
            t.add_column(rubric)
        rows = {
            "judge": [e["judge_name"] for e in result.rubrics.values()],
            "positive": [
                f"{_SIDE_TEXT[e['positive']]} {_num(e['threshold'])}"
                for e in result.rubrics.values()
            ],
            "scored / labelled": [f"{e['n_scored']} / {e['n']}" for e in result.rubrics.values()],
        }
        for key, name in _SHOWN.items():
            rows[name] = [_interval(e[key]) for e in result.rubrics.values()]
        for name, cells in rows.items():
            t.add_row(name, *cells)
        console.print(t)
    if result.metrics:
        t = Table(title=f"{result.task} metrics: reference vs judged")
        t.add_column("")
        for metric in result.metrics:
            t.add_column(metric)
        t.add_row("graded with", *[", ".join(e["graded_with"]) for e in result.metrics.values()])
        t.add_row("n", *[str(e["n"]) for e in result.metrics.values()])
        for key, name in _SHOWN.items():
            if key in ("spearman", "auroc"):
                continue
            t.add_row(name, *[_interval(e[key]) for e in result.metrics.values()])
        console.print(t)
    for rubric, e in result.rubrics.items():
        for reason, count in e["unscored_reasons"].items():
            console.print(f"{rubric}: {count} unscored ({reason}); left out of the statistics")
    if any("exact_over" in v for e in (*result.rubrics.values(), *result.metrics.values())
           for v in e.values() if isinstance(v, dict)):  # fmt: skip
        console.print(
            "*: every resample agreed at 0 or 1; the interval is the exact"
            " (Clopper-Pearson) one over the questions it counts",
            highlight=False,
        )
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


def _interval(stat: dict[str, float]) -> str:
    if math.isnan(stat["mean"]):
        return "n/a"
    if math.isnan(stat["lo"]):
        return f"{stat['mean']:.2f}"
    exact = "*" if "exact_over" in stat else ""  # the exact interval at a bound
    return f"{stat['mean']:.2f} [{stat['lo']:.2f}, {stat['hi']:.2f}]{exact}"
