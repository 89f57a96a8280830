"""Rogan-Gladen correction: a hand-computed case, the not-correctable rule and an interval
that widens with the calibration's own uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from grasp_bench.prevalence import JudgeError, corrected_rate, rogan_gladen


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
