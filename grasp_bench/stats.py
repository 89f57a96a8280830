"""Confidence intervals that respect clustering: paraphrases and repeated samples of one
question (and the same question across seeds) are not independent observations."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Estimate:
    """A mean with its 95% interval, clustered standard error and sample counts."""

    mean: float
    lo: float
    hi: float
    se: float
    n: int
    clusters: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def clustered_se(values: np.ndarray, clusters: np.ndarray) -> float:
    """Cluster-robust (CR1) standard error of the mean."""
    n = len(values)
    mean = values.mean()
    sums = pd.Series(values - mean).groupby(pd.Series(clusters)).sum().to_numpy()
    g = len(sums)
    if g < 2:
        return float("nan")
    return float(math.sqrt(g / (g - 1) * np.sum(sums**2)) / n)


def _wilson(p: float, n_eff: float, z: float) -> tuple[float, float]:
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / denom
    # clamp: float error must not put the estimate outside its own interval
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def mean_ci(
    values: Any, clusters: Any, level: float = 0.95, binary: bool | None = None
) -> Estimate:
    """Mean with a clustered 95% CI. A rate (``binary``; None: values all 0 or 1) gets a
    Wilson interval at the effective sample size (n divided by the design effect), so a rate
    of 0 or 1 still gets a width; a grade on a wider scale gets the normal interval even when
    every value happens to be 0 or 1."""
    y = np.asarray(values, dtype=float)
    c = np.asarray(clusters)
    if len(y) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0, 0)
    mean = float(y.mean())
    se = clustered_se(y, c)
    g = len(set(c.tolist()))
    z = _z(level)
    if binary is None:
        binary = set(np.unique(y)) <= {0.0, 1.0}
    if binary:
        iid_var = mean * (1 - mean) / len(y)
        if se > 0 and iid_var > 0:
            n_eff = min(float(len(y)), mean * (1 - mean) / se**2)
        else:
            n_eff = float(g)  # degenerate rate: the clusters are the conservative count
        lo, hi = _wilson(mean, max(n_eff, 1.0), z)
    else:
        lo, hi = (mean - z * se, mean + z * se) if not math.isnan(se) else (mean, mean)
    return Estimate(mean, lo, hi, se, len(y), g)


def paired_difference(
    a: pd.DataFrame,
    b: pd.DataFrame,
    value: str = "value",
    cluster: str = "prompt_id",
    level: float = 0.95,
) -> Estimate:
    """Mean of a - b over the clusters both share (per-cluster means first), with a CI."""
    ma = a.groupby(cluster)[value].mean()
    mb = b.groupby(cluster)[value].mean()
    shared = ma.index.intersection(mb.index)
    d = (ma.loc[shared] - mb.loc[shared]).to_numpy(dtype=float)
    if len(d) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0, 0)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    z = _z(level)
    half = z * se if not math.isnan(se) else 0.0
    return Estimate(mean, mean - half, mean + half, se, len(d), len(d))
