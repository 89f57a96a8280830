"""Rogan-Gladen correction: a hand-computed case, the not-correctable rule and an interval
that widens with the calibration's own uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from grasp_bench.core.prevalence import JudgeError, corrected_rate, rogan_gladen


def test_hand_computed_case_and_clipping():
    # a judge that flags 30% of answers, with sens 0.8 and spec 0.9: (0.3 + 0.9 - 1) / 0.7
    assert rogan_gladen(0.30, 0.8, 0.9) == pytest.approx(0.2 / 0.7)
    assert rogan_gladen(0.05, 0.8, 0.9) == 0.0  # below the false-positive floor: clipped
    assert rogan_gladen(0.95, 0.8, 0.9) == 1.0
    assert rogan_gladen(0.30, 0.55, 0.6) is None  # Youden 0.15 < 0.2: not correctable


def test_the_interval_carries_the_calibrations_uncertainty():
    rng = np.random.default_rng(0)
    values = (rng.random(2000) < 0.3).astype(float)
    clusters = np.repeat(np.arange(200), 10)
    precise = JudgeError.from_rates(10_000, 0.3, 0.8, 0.9)
    rough = JudgeError.from_rates(40, 0.3, 0.8, 0.9)  # the same error, measured on 40 items
    a, b = corrected_rate(values, clusters, precise), corrected_rate(values, clusters, rough)
    assert a.mean == pytest.approx(b.mean) == pytest.approx((a.raw + 0.9 - 1) / 0.7)
    assert a.lo <= a.mean <= a.hi and (b.hi - b.lo) > 1.5 * (a.hi - a.lo)
    weak = corrected_rate(values, clusters, JudgeError.from_rates(100, 0.3, 0.5, 0.6))
    assert weak.mean is None and "not correctable" in weak.text() and "0.10 < 0.2" in weak.text()


def test_a_rate_clipped_at_zero_keeps_a_width():
    # every judged rate below the judge's false-positive floor: all draws clip to 0, and a
    # zero-width [0, 0] would claim certainty the data does not have
    values = np.array([1.0] * 10 + [0.0] * 40)
    clusters = np.arange(50)
    error = JudgeError.from_rates(135, 0.25, 0.73, 0.67)  # false-positive rate 0.33 > 0.20
    got = corrected_rate(values, clusters, error)
    assert got.mean == 0.0 and got.lo == 0.0 and 0.0 < got.hi < 0.5
    # fewer prompts: less certain, a wider bound
    few = corrected_rate(values[::5], clusters[::5], error)
    assert few.hi > got.hi


def test_the_posterior_bound_is_near_the_clean_case():
    from grasp_bench.core.prevalence import posterior_bound

    # a perfect judge and no positives in 100 prompts: the one-sided 95% bound is near the
    # rule of three (3 / 100) for a uniform prior (1 - 0.05 ** (1 / 101))
    ones = np.ones(200)
    bound = posterior_bound(0.0, 100, ones, ones, upper=True)
    assert bound == pytest.approx(1 - 0.05 ** (1 / 101), abs=0.002)
