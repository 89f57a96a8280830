"""Judge calibration beside the board's numbers: how well a judge agreed with a human-labelled
reference set, read from the files ``grasp-bench judge calibrate`` writes to
``<board>/calibration/*.json``.

A headline number is only as good as the judge that made it, so the board shows, beside each
drift judge, that judge's calibration on the drift metric's first rubric, matched on the judge
identity stored with every score.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CALIBRATION_SCHEMA = "grasp-bench/calibration/v1"
NOT_CALIBRATED = "not calibrated"

# Identity fields compared only where both identities have them (a version bump, or another
# model behind a local server, is another judge).
_COMPARED_WHERE_PRESENT = ("version", "rubric_version", "served_model")


class _Lenient(BaseModel):
    # the calibrate command may add fields; the board reads the ones it shows
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class Interval(_Lenient):
    """A statistic with its 95% interval."""

    mean: float | None = None
    lo: float | None = None
    hi: float | None = None


class RubricCalibration(_Lenient):
    """One judge on one rubric against the reference labels."""

    judge: dict[str, Any] = Field(description="The judge's identity, as stored with its scores.")
    judge_name: str = ""
    n: int = Field(0, description="Reference items graded.")
    spearman: Interval | None = None
    auroc: Interval | None = None
    kappa: Interval | None = None
    precision: Interval | None = None
    recall: Interval | None = None
    unscored_share: float | None = None


class MetricCalibration(_Lenient):
    """A metric (a thresholded rubric) against the reference labels."""

    n: int | None = Field(None, description="Reference items the metric was compared on.")
    graded_with: list[str] | None = Field(
        None, description="The rubrics a judge graded when the metric was calibrated."
    )
    precision: Interval | None = None
    recall: Interval | None = None
    kappa: Interval | None = None
    specificity: Interval | None = None
    reference_rate: Interval | None = None


class CalibrationFile(_Lenient):
    schema_: str = Field(alias="schema")
    reference: str | None = None
    task: str | None = None
    rubrics: dict[str, RubricCalibration] = {}
    metrics: dict[str, MetricCalibration] = {}


@dataclass(frozen=True)
class Calibration:
    """A rubric's calibration and the file it came from (relative to the board)."""

    path: str
    task: str | None
    rubric: str
    result: RubricCalibration

    def summary(self) -> str:
        """``aligned: ρ 0.71 [0.60, 0.80], AUROC 0.90, κ 0.55 (n 120)``"""
        r = self.result
        parts = []
        if r.spearman and r.spearman.mean is not None:
            parts.append(f"ρ {_num(r.spearman.mean)}{_ci(r.spearman)}")
        if r.auroc and r.auroc.mean is not None:
            parts.append(f"AUROC {_num(r.auroc.mean)}")
        if r.kappa and r.kappa.mean is not None:
            parts.append(f"κ {_num(r.kappa.mean)}")
        if r.unscored_share:  # statistics over the few it graded say little on their own
            parts.append(f"{r.unscored_share:.0%} unscored")
        return f"{self.rubric}: {', '.join(parts) or 'no statistics'} (n {r.n})"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _ci(iv: Interval | None) -> str:
    return "" if iv is None or iv.lo is None or iv.hi is None else f" [{iv.lo:.2f}, {iv.hi:.2f}]"


def interval_text(iv: Interval | None) -> str:
    """``0.71 [0.60, 0.80]``, or empty where the file has no such statistic."""
    return "" if iv is None or iv.mean is None else f"{_num(iv.mean)}{_ci(iv)}"


def load_calibrations(board: Path) -> dict[str, CalibrationFile]:
    """Every ``calibration/*.json`` of the board by its path relative to the board; a file of
    another schema, or one that does not parse, is skipped with a warning."""
    out: dict[str, CalibrationFile] = {}
    for path in sorted((Path(board) / "calibration").glob("*.json")):
        rel = path.relative_to(board).as_posix()
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"{rel}: not readable JSON ({exc}); skipped", stacklevel=2)
            continue
        schema = raw.get("schema") if isinstance(raw, dict) else None
        if schema != CALIBRATION_SCHEMA:
            warnings.warn(
                f"{rel}: schema {schema!r} is not {CALIBRATION_SCHEMA!r}; skipped", stacklevel=2
            )
            continue
        try:
            out[rel] = CalibrationFile.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            warnings.warn(f"{rel} {where}: {err['msg']}; skipped", stacklevel=2)
    return out


def same_judge(scored: dict[str, Any], calibrated: dict[str, Any]) -> bool:
    """The judge that made a score is the one a calibration measured: same kind, model or
    name, and rubric; versions (and a local server's model) equal where both record them."""

    def same(key: str) -> bool:
        return str(scored[key]) == str(calibrated[key])

    if not all(k in scored and k in calibrated and same(k) for k in ("kind", "rubric")):
        return False
    names = [k for k in ("model", "name") if k in scored and k in calibrated]
    if not names or not all(same(k) for k in names):
        return False
    return all(same(k) for k in _COMPARED_WHERE_PRESENT if k in scored and k in calibrated)


def _candidates(
    files: dict[str, CalibrationFile], judge: dict[str, Any], rubric: str, task: str
) -> list[tuple[str, CalibrationFile]]:
    """Every file that calibrated this judge on this rubric, best first: a file for this task,
    then a task-free one, then any (in file-name order within each). An identity without a
    rubric graded the one asked for (a metric's score carries its first rubric's judge)."""
    scored = {"rubric": rubric, **judge}
    found = []
    for path, cal in files.items():
        result = cal.rubrics.get(rubric)
        if result is None or not same_judge(scored, {"rubric": rubric, **result.judge}):
            continue
        found.append((0 if cal.task == task else 1 if cal.task is None else 2, path, cal))
    return [(path, cal) for _, path, cal in sorted(found, key=lambda f: f[:2])]


def _graded_as(entry: MetricCalibration | None, rubric: str, graded_with: list[str]) -> bool:
    """The metric was calibrated with the rubrics the scores were graded with: misaligned with
    a coherence judge is another decision than without."""
    return entry is not None and sorted(entry.graded_with or [rubric]) == sorted(graded_with)


def find_calibration(
    files: dict[str, CalibrationFile],
    judge: dict[str, Any],
    rubric: str,
    task: str,
    metric: str | None = None,
    graded_with: list[str] | None = None,
) -> Calibration | None:
    """The calibration of this judge on this rubric (``_candidates``' best); with ``metric``
    and ``graded_with``, a file that calibrated that metric as the scores were graded comes
    first, so the calibration shown is the one a corrected rate uses."""
    found = _candidates(files, judge, rubric, task)
    if metric and graded_with:
        found.sort(key=lambda f: not _graded_as(f[1].metrics.get(metric), rubric, graded_with))
    if not found:
        return None
    path, cal = found[0]
    return Calibration(path, cal.task, rubric, cal.rubrics[rubric])


def find_metric_calibration(
    files: dict[str, CalibrationFile],
    judge: dict[str, Any],
    rubric: str,
    metric: str,
    task: str,
    graded_with: list[str] | None = None,
) -> tuple[str, MetricCalibration] | None:
    """The file and entry calibrating ``metric`` for the judge that graded its first rubric;
    with ``graded_with`` (the rubrics a judge graded for the scores), only an entry calibrated
    on the same rubrics."""
    for path, cal in _candidates(files, judge, rubric, task):
        entry = cal.metrics.get(metric)
        if entry is not None and (graded_with is None or _graded_as(entry, rubric, graded_with)):
            return path, entry
    return None


def rubrics_graded(judge: dict[str, Any], rubric: str) -> list[str]:
    """The rubrics a judge graded for a score: its first rubric and those named in ``with``
    (``coherent:coherence-lm-v1,...``), as ``scoring`` records a combined metric."""
    others = [part.split(":", 1)[0] for part in str(judge.get("with") or "").split(",") if part]
    return [rubric, *others]
