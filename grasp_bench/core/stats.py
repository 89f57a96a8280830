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


def widen_at_bound(
    mean: float, lo: float, hi: float, n_units: int, level: float = 0.95
) -> tuple[float, float]:
    """A rate whose interval collapsed onto 0 or 1 (every resample the same: all seeds and
    prompts 0, or all 1) gets the Wilson interval at ``n_units`` on its open side instead of a
    zero width that claims certainty; ``n_units`` is the conservative count (distinct prompts,
    which repeat across seeds). Any other interval is returned as it is."""
    if not hi - lo <= 1e-12 or mean not in (0.0, 1.0) or n_units < 1:  # nan: no interval
        return lo, hi
    wlo, whi = _wilson(mean, float(n_units), _z(level))
    return min(lo, wlo), max(hi, whi)


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
    """Mean of a - b over the clusters both share (per-cluster means first), with a CI. Two
    rates whose paired differences are all equal get Newcombe's interval, not a zero width."""
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
    lo, hi = mean - half, mean + half
    if is_rate(a[value]) and is_rate(b[value]):
        pa, pb = float(ma.loc[shared].mean()), float(mb.loc[shared].mean())
        lo, hi = widen_difference_at_bound(pa, pb, lo, hi, len(d), level)
    return Estimate(mean, lo, hi, se, len(d), len(d))


def is_rate(values: pd.Series) -> bool:
    """Values that are all 0 or 1 (missing ones left out)."""
    return set(np.unique(values.dropna().to_numpy(dtype=float))) <= {0.0, 1.0}


def widen_difference_at_bound(
    pa: float, pb: float, lo: float, hi: float, n_units: int, level: float = 0.95
) -> tuple[float, float]:
    """A difference of two rates whose interval collapsed (every paired difference the same,
    e.g. both arms 0 on every prompt, or 1 against 0) gets Newcombe's interval at ``n_units``
    instead; any other interval is returned as it is."""
    if not hi - lo <= 1e-12 or n_units < 1:  # nan: no interval
        return lo, hi
    wlo, whi = _newcombe(pa, pb, n_units, _z(level))
    return min(lo, wlo), max(hi, whi)


def _newcombe(pa: float, pb: float, n: int, z: float) -> tuple[float, float]:
    """Newcombe's interval for pa - pb from each rate's Wilson interval at ``n`` units: the
    width a difference of two rates keeps when every paired difference is the same (both arms
    0 on every prompt, say), where the paired interval would claim certainty."""
    la, ua = _wilson(pa, float(n), z)
    lb, ub = _wilson(pb, float(n), z)
    d = pa - pb
    return d - math.hypot(pa - la, ub - pb), d + math.hypot(ua - pa, pb - lb)


@dataclass
class Bootstrap:
    """A hierarchical-bootstrap estimate: the mean over the data, its percentile interval, and
    how many units each level has (e.g. teachers, seeds, prompts)."""

    mean: float
    lo: float
    hi: float
    n: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nested_groups(df: pd.DataFrame, levels: list[str], value: str) -> Any:
    """A list per unit of each level down to an array of the last level's unit means:
    [[array of prompt means of seed 1, ...] of teacher 1, ...]."""
    if len(levels) == 1:
        return df.groupby(levels[0])[value].mean().to_numpy(dtype=float)
    return [_nested_groups(part, levels[1:], value) for _, part in df.groupby(levels[0])]


def _draw(tree: Any, rng: np.random.Generator) -> float:
    """One bootstrap draw: resample the units of each level with replacement, within the unit
    drawn above; the mean of the leaves."""
    if isinstance(tree, np.ndarray):
        return float(tree[rng.integers(0, len(tree), len(tree))].mean())
    picks = rng.integers(0, len(tree), len(tree))
    return float(np.mean([_draw(tree[i], rng) for i in picks]))


def hierarchical_bootstrap(
    df: pd.DataFrame,
    levels: list[str],
    value: str = "value",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    rate: bool = False,
) -> Bootstrap:
    """Mean of ``value`` with a percentile interval from resampling ``levels`` in order (e.g.
    teacher, then seed within teacher, then prompt within seed): the training run, not the
    prompt, is the unit of replication. A level with one unit contributes no spread of its own
    (a single teacher's interval is over its seeds and prompts only). A ``rate`` whose
    resamples are all 0 or all 1 gets a width from ``widen_at_bound`` (distinct units of the
    last level)."""
    if df.empty:
        return Bootstrap(float("nan"), float("nan"), float("nan"), {lv: 0 for lv in levels})
    tree = _nested_groups(df, levels, value)
    rng = np.random.default_rng(seed)
    draws = np.array([_draw(tree, rng) for _ in range(n_boot)])
    alpha = (1 - level) / 2
    counts = {lv: int(df.groupby(levels[: i + 1]).ngroups) for i, lv in enumerate(levels)}
    mean = float(_draw_mean(tree))
    lo, hi = float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))
    if rate:
        lo, hi = widen_at_bound(mean, lo, hi, int(df[levels[-1]].nunique()), level)
    return Bootstrap(mean, lo, hi, counts)


def _draw_mean(tree: Any) -> float:
    """The point estimate: the mean of the leaves, each level's units weighted equally."""
    if isinstance(tree, np.ndarray):
        return float(tree.mean())
    return float(np.mean([_draw_mean(t) for t in tree]))


def paired_hierarchical_difference(
    a: pd.DataFrame,
    b: pd.DataFrame,
    levels: list[str],
    value: str = "value",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Bootstrap:
    """Mean of a - b over the units both share (matched at every level: the same teacher, seed
    and prompt), with a hierarchical-bootstrap interval that resamples the matched pairs."""
    ma = a.groupby(levels)[value].mean()
    mb = b.groupby(levels)[value].mean()
    shared = ma.index.intersection(mb.index)
    diff = (ma.loc[shared] - mb.loc[shared]).rename(value).reset_index()
    return hierarchical_bootstrap(diff, levels, value, n_boot, level, seed)


def min_detectable_difference(half_width: float, power_z: float = 0.84) -> float:
    """The smallest true difference a paired comparison of this interval half-width detects
    with 80% power at the 5% level: (z_0.975 + z_0.8) / z_0.975 x half-width."""
    return float(half_width * (_z(0.95) + power_z) / _z(0.95))
