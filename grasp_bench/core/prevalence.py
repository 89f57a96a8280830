"""A judge's rate corrected for the judge's known error (Rogan-Gladen).

A judge with sensitivity ``sens`` and specificity ``spec`` at the metric's threshold reports
p = sens * pi + (1 - spec) * (1 - pi) for a true rate pi, so pi = (p + spec - 1) /
(sens + spec - 1), clipped to [0, 1]. The interval carries both errors: the sampled answers are
resampled by prompt (the judged rate's own uncertainty), and sens and spec are drawn from their
Jeffreys Beta posteriors given the calibration's counts (the calibration's uncertainty). A judge
whose Youden index sens + spec - 1 is below ``MIN_YOUDEN`` barely tells positives from
negatives, and its rate is "not correctable": dividing by a number near 0 makes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_YOUDEN = 0.2


def rogan_gladen(p: float, sens: float, spec: float) -> float | None:
    """The corrected rate, or None where the judge's Youden index is below ``MIN_YOUDEN``."""
    youden = sens + spec - 1
    if youden < MIN_YOUDEN:
        return None
    return float(min(1.0, max(0.0, (p + spec - 1) / youden)))


@dataclass(frozen=True)
class JudgeError:
    """A judge's error at a threshold, as counts from its calibration."""

    true_pos: float
    positives: float  # reference positives
    true_neg: float
    negatives: float  # reference negatives

    @property
    def sens(self) -> float:
        return self.true_pos / self.positives

    @property
    def spec(self) -> float:
        return self.true_neg / self.negatives

    @classmethod
    def from_rates(cls, n: int, reference_rate: float, sens: float, spec: float) -> JudgeError:
        pos = n * reference_rate
        return cls(sens * pos, pos, spec * (n - pos), n - pos)


@dataclass(frozen=True)
class Corrected:
    raw: float
    mean: float | None
    lo: float | None
    hi: float | None
    reason: str | None = None  # why there is no corrected number

    def text(self) -> str:
        if self.mean is None:
            return f"not correctable ({self.reason})"
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def corrected_rate(
    values: np.ndarray, clusters: np.ndarray, error: JudgeError, n_boot: int = 2000, seed: int = 0
) -> Corrected:
    """The judged 0/1 values' rate corrected for ``error``, with a 95% interval over both the
    prompts (cluster bootstrap) and the calibration (Beta draws of sens and spec)."""
    values, clusters = np.asarray(values, dtype=float), np.asarray(clusters)
    raw = float(values.mean())
    if error.positives <= 0 or error.negatives <= 0:
        return Corrected(raw, None, None, None, "the calibration has no positives or negatives")
    point = rogan_gladen(raw, error.sens, error.spec)
    if point is None:
        youden = error.sens + error.spec - 1
        return Corrected(raw, None, None, None, f"sens + spec - 1 = {youden:.2f} < {MIN_YOUDEN}")
    rng = np.random.default_rng(seed)
    _, cluster_of = np.unique(clusters, return_inverse=True)
    sums = np.bincount(cluster_of, weights=values)
    counts = np.bincount(cluster_of)
    picks = rng.integers(0, len(sums), (n_boot, len(sums)))
    p = sums[picks].sum(1) / counts[picks].sum(1)
    fn, fp = error.positives - error.true_pos, error.negatives - error.true_neg
    sens = rng.beta(error.true_pos + 0.5, fn + 0.5, n_boot)
    spec = rng.beta(error.true_neg + 0.5, fp + 0.5, n_boot)
    youden = sens + spec - 1
    ok = youden >= MIN_YOUDEN  # a draw where the judge cannot be corrected says nothing
    draws = np.clip((p[ok] + spec[ok] - 1) / youden[ok], 0, 1)
    lo, hi = np.percentile(draws, [2.5, 97.5]) if len(draws) else (float("nan"),) * 2
    if len(draws) and hi - lo <= 1e-12 and point in (0.0, 1.0):
        # every draw clipped to the same bound: the bootstrap says nothing about how far from
        # it the rate could be, so the open side comes from the posterior of the rate itself
        bound = posterior_bound(raw, len(sums), sens[ok], spec[ok], upper=point == 0.0)
        lo, hi = (point, bound) if point == 0.0 else (bound, point)
    return Corrected(raw, point, float(lo), float(hi))


def posterior_bound(
    raw: float, n_units: int, sens: np.ndarray, spec: np.ndarray, upper: bool, level: float = 0.95
) -> float:
    """A one-sided ``level`` bound on the true rate (uniform prior on [0, 1]): the judged
    positives, counted as ``raw`` x ``n_units`` (prompts: the conservative count), are binomial
    at the rate the judge reports, sens x pi + (1 - spec)(1 - pi), averaged over the draws of
    the calibration (Gelman and Carpenter 2020 do this for a test's sensitivity and
    specificity). Used where the clipped corrected draws all sit on one bound."""
    grid = np.linspace(0.0, 1.0, 1001)
    k, n = raw * n_units, float(n_units)
    judged = np.clip(np.outer(sens, grid) + np.outer(1 - spec, 1 - grid), 1e-12, 1 - 1e-12)
    loglike = k * np.log(judged) + (n - k) * np.log(1 - judged)  # draws x grid
    like = np.exp(loglike - loglike.max()).mean(0)  # the binomial coefficient cancels
    cdf = np.cumsum(like) / like.sum()
    q = level if upper else 1 - level
    return float(grid[min(np.searchsorted(cdf, q), len(grid) - 1)])
