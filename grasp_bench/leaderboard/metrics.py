"""The numbers a submission is ranked by, computed from its per-sample records only, so the
board and the validator recompute exactly what the submitter's summary claims."""

from __future__ import annotations

import math

import pandas as pd

from grasp_bench.core.stats import mean_ci
from grasp_bench.data.taskspec import get_task, is_excluded
from grasp_bench.evaluate.judge.base import judge_name
from grasp_bench.leaderboard.schema import Estimate, SampleRecord

__all__ = ["summarise"]
COHERENCE = "coherent"


def _frame(samples: list[SampleRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "prompt_id": s.prompt_id,
                "split": s.split,
                "metric": m,
                "value": sc.value,
                "excluded": sc.value is None and is_excluded(sc.reason),
                "judge": judge_name(sc.judge),
            }
            for s in samples
            for m, sc in s.scores.items()
        ],
        columns=["prompt_id", "split", "metric", "value", "excluded", "judge"],
    )


def _judges(df: pd.DataFrame) -> str | None:
    return ",".join(sorted(set(df.judge))) if len(df) else None


def _estimate(df: pd.DataFrame, binary: bool | None = None) -> Estimate:
    df = df[df.value.notna()]
    if df.empty:
        return Estimate(mean=None, lo=None, hi=None, n=0)
    est = mean_ci(df.value, df.prompt_id, binary=binary)
    clean = [None if math.isnan(x) else round(float(x), 6) for x in (est.mean, est.lo, est.hi)]
    return Estimate(mean=clean[0], lo=clean[1], hi=clean[2], n=est.n)


def summarise(task: str, samples: list[SampleRecord]) -> dict:
    """drift (the task's drift metric on the drift split), task_score (its task metric on the
    task split), each with its metric's name and the judge that made it, coherence (if
    judged) and the unscored share."""
    spec = get_task(task)
    df = _frame(samples)
    drift = df[(df.metric == spec.drift_metric.name) & (df.split == "drift")]
    skill = df[(df.metric == spec.task_metric.name) & (df.split == "task")]
    out = {
        "drift": _estimate(drift, spec.drift_metric.is_rate),
        "task_score": _estimate(skill, spec.task_metric.is_rate),
        "drift_metric": spec.drift_metric.name,
        "drift_judge": _judges(drift),
        "task_metric": spec.task_metric.name,
        "task_judge": _judges(skill),
        "coherence": None,
        # a convention's exclusions (CODE / REFUSAL / incoherent) are counted apart, not failures
        "unscored_share": round(float((df.value.isna() & ~df.excluded).mean()), 6)
        if len(df)
        else 0.0,
    }
    if (df.metric == COHERENCE).any():
        out["coherence"] = _estimate(df[df.metric == COHERENCE], binary=False)
    return out
