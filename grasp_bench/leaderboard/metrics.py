"""The numbers a submission is ranked by, computed from its per-sample records only, so the
board and the validator recompute exactly what the submitter's summary claims."""

from __future__ import annotations

import math

import pandas as pd

from grasp_bench.data.tasks import TASK_METRICS
from grasp_bench.leaderboard.schema import Estimate, SampleRecord
from grasp_bench.stats import mean_ci

__all__ = ["TASK_METRICS", "summarise"]
COHERENCE = "coherent"


def _frame(samples: list[SampleRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"prompt_id": s.prompt_id, "split": s.split, "metric": m, "value": sc.value}
            for s in samples
            for m, sc in s.scores.items()
        ]
    )


def _estimate(df: pd.DataFrame) -> Estimate:
    df = df[df.value.notna()]
    if df.empty:
        return Estimate(mean=None, lo=None, hi=None, n=0)
    est = mean_ci(df.value, df.prompt_id)
    clean = [None if math.isnan(x) else round(float(x), 6) for x in (est.mean, est.lo, est.hi)]
    return Estimate(mean=clean[0], lo=clean[1], hi=clean[2], n=est.n)


def summarise(task: str, samples: list[SampleRecord]) -> dict:
    """drift, task_score, coherence (if judged) and the unscored share."""
    drift_metric, drift_split, task_metric, task_split = TASK_METRICS[task]
    df = _frame(samples)
    out = {
        "drift": _estimate(df[(df.metric == drift_metric) & (df.split == drift_split)]),
        "task_score": _estimate(df[(df.metric == task_metric) & (df.split == task_split)]),
        "coherence": None,
        "unscored_share": round(float(df.value.isna().mean()), 6) if len(df) else 0.0,
    }
    if (df.metric == COHERENCE).any():
        out["coherence"] = _estimate(df[df.metric == COHERENCE])
    return out
