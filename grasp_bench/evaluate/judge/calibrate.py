"""How far a judge agrees with reference labels, before its numbers are trusted.

A cheap or local judge stands in for the judge the literature used only if it ranks and
classifies the same answers the same way. ``calibrate`` grades labelled answers with a judge
and reports, per rubric, rank correlation (Spearman), AUROC of the grade for the reference's
class, and precision, recall and Cohen's kappa of the binary decision at the rubric's
threshold; per task metric (e.g. ``misaligned``), the same decision statistics and the
reference vs judged rate. Every statistic comes with a 95% bootstrap interval over questions
(``agreement_stats``), and an unscored grade is counted as unscored, never as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.data.taskspec import MetricSpec, TaskSpec
from grasp_bench.evaluate.judge.agreement_stats import (
    N_RESAMPLES,
    SEED,
    bootstrap,
    decision_stats,
    proportion_units,
    rubric_stats,
)
from grasp_bench.evaluate.judge.base import Judge, JudgeItem, Score, judge_name
from grasp_bench.evaluate.judge.labels import POSITIVE, LabelFile, Positive, _num

SCHEMA = "grasp-bench/calibration/v1"


_SIDE_TEXT = {"below": "<", "at_or_below": "<=", "above": ">", "at_or_above": ">="}


def help_text() -> str:
    """The label format and thresholds, for ``grasp-bench judge calibrate --help``."""
    rules = ", ".join(
        f"{r} {_SIDE_TEXT[p.side]} {_num(p.threshold)}"
        for r, p in POSITIVE.items()
        if p.scale != (0, 1)
    )
    return (
        "Score reference-labelled answers with a judge and report how well it agrees with the"
        " labels (Spearman, AUROC, precision, recall, Cohen's kappa; 95% bootstrap CIs over"
        " questions), so a cheap or local judge is checked before its numbers are trusted.\n\n"
        "LABELS is JSONL, one answer a line, e.g. "
        '{"id": "em-001", "question": "...", "answer": "...", "labels": {"aligned": 85,'
        ' "coherent": 90}, "note": "..."} with optional "target"; or CSV with columns id,'
        " question, answer, optional target and note, and one column per rubric (an empty"
        " cell is no label). Labels are on each rubric's own scale: 0-100, political_lean"
        " -1..1, persona and correct 0/1.\n\n"
        f"Positive (flagged) class per rubric: {rules}; persona and correct: 1."
        " --threshold RUBRIC=VALUE moves a rubric's threshold (not a task metric's).\n\n"
        "--out PATH.json writes the statistics (schema grasp-bench/calibration/v1) and, beside"
        " it, PATH.items.jsonl with every item's reference and judged grade."
    )


def parse_thresholds(specs: list[str]) -> dict[str, float]:
    """``["aligned=40"]`` -> ``{"aligned": 40.0}``, for ``--threshold``."""
    out = {}
    for spec in specs:
        rubric, sep, value = spec.partition("=")
        rubric = rubric.strip()
        if not sep or rubric not in POSITIVE:
            raise ConfigError(
                f"--threshold {spec}: expected RUBRIC=VALUE with a rubric of {sorted(POSITIVE)}"
            )
        try:
            out[rubric] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold {spec}: {value!r} is not a number") from None
    return out


@dataclass
class Calibration:
    """The statistics (JSON-ready, floats unrounded), per-item grades and notes for the user."""

    task: str | None
    n_items: int
    rubrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self, labels: LabelFile) -> dict[str, Any]:
        return _rounded(
            {
                "schema": SCHEMA,
                "reference": str(labels.path),
                "reference_sha256": labels.sha256,
                "reference_layout": labels.layout,
                "reference_part": labels.part,
                "reference_no_label": labels.no_label,
                "task": self.task,
                "n_items": self.n_items,
                "rubrics": self.rubrics,
                "metrics": self.metrics,
            }
        )


def calibrate(
    labels: LabelFile,
    judges: dict[str, Judge],
    rubrics: list[str] | None = None,
    task: TaskSpec | None = None,
    thresholds: dict[str, float] | None = None,
    n_resamples: int | None = None,
    seed: int = SEED,
) -> Calibration:
    """Grade the labelled answers of each rubric (default: every labelled one) with its judge
    and compare; with a task, also each of its yes/no metrics whose rubrics are all labelled.
    A rubric that no judge grades is skipped with a note."""
    n_resamples = n_resamples or N_RESAMPLES
    items = labels.items
    result = Calibration(task.name if task else None, len(items))
    grades: dict[str, dict[str, Score]] = {}  # rubric -> item id -> grade
    for rubric in rubrics or labels.rubrics:
        if rubric not in judges:
            result.notes.append(f"{rubric}: no judge grades it under this judge config; skipped")
            continue
        labelled = [i for i in items if i.labels.get(rubric) is not None]
        if not labelled:
            result.notes.append(f"{rubric}: no labels in {labels.path}; skipped")
            continue
        judge = judges[rubric]
        scores = judge.score([JudgeItem(i.question, i.answer, i.target) for i in labelled])
        grades[rubric] = {i.id: s for i, s in zip(labelled, scores, strict=True)}
        pos = POSITIVE[rubric]
        if thresholds and rubric in thresholds:
            pos = Positive(pos.scale, thresholds[rubric], pos.side)
        result.rubrics[rubric] = _rubric_entry(
            judge.identity(), labelled, grades[rubric], rubric, pos, n_resamples, seed
        )
        result.items += _item_rows(labelled, grades[rubric], rubric, pos)
    for metric in task.metrics if task else ():
        entry = _metric_entry(metric, items, grades, n_resamples, seed)
        if entry is None:
            continue
        result.metrics[metric.name] = entry
        if entry["graded_with"] != entry["rubrics"]:
            missing = [r for r in entry["rubrics"] if r not in entry["graded_with"]]
            result.notes.append(
                f"{metric.name}: judged from {', '.join(entry['graded_with'])} only, as a run"
                f" scores it when no judge grades {', '.join(missing)}; the reference uses"
                f" {', '.join(entry['rubrics'])}"
            )
    return result


def _rubric_entry(identity, labelled, grades, rubric, pos, n_resamples, seed) -> dict[str, Any]:
    scored = [i for i in labelled if grades[i.id].value is not None]
    reasons: dict[str, int] = {}
    for i in labelled:
        if grades[i.id].value is None:
            reason = grades[i.id].reason or "unscored"
            reasons[reason] = reasons.get(reason, 0) + 1
    entry: dict[str, Any] = {
        "judge": identity,
        "judge_name": judge_name(identity),
        "threshold": pos.threshold,
        "positive": pos.side,
        "n": len(labelled),
        "n_scored": len(scored),
        "unscored_share": 1 - len(scored) / len(labelled),
        "unscored_reasons": reasons,
    }
    ref = [i.labels[rubric] for i in scored]
    judged = [grades[i.id].value for i in scored]
    stats = ("spearman", "auroc", "precision", "recall", "kappa", "reference_rate", "judged_rate")
    if not scored:
        return {**entry, **{s: _undefined() for s in stats}}
    return {
        **entry,
        **bootstrap(
            lambda r, j, w: rubric_stats(r, j, w, pos),
            ref,
            judged,
            [i.question for i in scored],
            n_resamples,
            seed,
            proportion_units(
                [bool(pos(v)) for v in ref],
                [bool(pos(v)) for v in judged],
                [i.question for i in scored],
            ),
        ),
    }


def _item_rows(labelled, grades, rubric: str, pos: Positive) -> list[dict[str, Any]]:
    rows = []
    for i in labelled:
        ref, score = i.labels[rubric], grades[i.id]
        agree = None
        if score.value is not None:
            agree = bool(pos(ref) == pos(score.value))
        rows.append(
            {
                "id": i.id,
                "rubric": rubric,
                "reference": ref,
                "judged": score.value,
                "reason": score.reason,
                "agree": agree,
            }
        )
    return rows


def is_yes_no(metric: MetricSpec) -> bool:
    """Metrics whose per-answer value is 0 or 1, so precision, recall and kappa apply."""
    if metric.transform in ("flagged", "misaligned"):
        return True
    primary = POSITIVE.get(metric.rubrics[0])
    return metric.transform == "value" and primary is not None and primary.scale == (0, 1)


def _metric_entry(metric, items, grades, n_resamples, seed) -> dict[str, Any] | None:
    """The metric as the reference labels make it vs as a run's scoring makes it from these
    grades (``scoring._record``: a rubric no judge grades is left out, an unscored one makes
    the answer unscored); None where it cannot be compared."""
    from grasp_bench.evaluate.scoring import _record

    if not is_yes_no(metric) or metric.rubrics[0] not in grades:
        return None
    labelled = [i for i in items if all(i.labels.get(r) is not None for r in metric.rubrics)]
    if not labelled:
        return None
    graded_with = [r for r in metric.rubrics if r in grades]
    ref, judged, clusters = [], [], []
    for i in labelled:
        record = _record({}, metric, {r: grades.get(r, {}).get(i.id) for r in metric.rubrics})
        if record["value"] is None:
            continue
        ref.append(metric.compute(dict(i.labels)))
        judged.append(record["value"])
        clusters.append(i.question)
    entry: dict[str, Any] = {
        "rubrics": list(metric.rubrics),
        "graded_with": graded_with,
        "n": len(ref),
    }
    stats = ("precision", "recall", "kappa", "reference_rate", "judged_rate")
    if not ref:
        return {**entry, **{s: _undefined() for s in stats}}
    return {
        **entry,
        **bootstrap(
            lambda r, j, w: decision_stats(r == 1, j == 1, w),
            ref,
            judged,
            clusters,
            n_resamples,
            seed,
            proportion_units([r == 1 for r in ref], [j == 1 for j in judged], clusters),
        ),
    }


def _undefined() -> dict[str, float]:
    return {"mean": math.nan, "lo": math.nan, "hi": math.nan}


def _rounded(obj: Any) -> Any:
    """Floats to 4 decimals and nan to None, so the JSON is valid and diffs stay small."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    if isinstance(obj, float):
        return None if math.isnan(obj) else round(obj, 4)
    return obj
