"""A run's report: the effect gate comes first, and the smallest difference the comparison
could detect is stated."""

from __future__ import annotations

import random

from grasp_bench.data.taskspec import get_task
from grasp_bench.evaluate.report import build_table, write_report

DRIFT = {"base": 0.0, "lora": 0.8, "new": 0.4}


def _records(drift: dict[str, float], seeds=(0, 1)):
    rng = random.Random(0)
    records, targets = [], []
    for method, rate in drift.items():
        for seed in seeds:
            target = f"{method}-s{seed}"
            targets.append({"target": target, "method": method, "seed": seed, "backend": "hf"})
            for p in range(30):
                for split, metric, value in (("drift", "persona", float(rng.random() < rate)),
                                             ("task", "correct", 1.0)):  # fmt: skip
                    records.append({"target": target, "prompt_id": f"{split}{p}", "sample": 0,
                                    "split": split, "metric": metric, "value": value,
                                    "reason": None, "judge": {"name": "t"}})  # fmt: skip
    return records, targets


def test_the_report_says_the_gate_first_and_the_detectable_difference(tmp_path):
    df = build_table(get_task("toy"), *_records(DRIFT))
    assert set(df.gate_verdict) == {"drifts"}
    md = write_report(df, tmp_path, "run", {})["md"].read_text()
    assert md.split("\n\n")[1].startswith("**Effect gate: plain LoRA drifts")
    assert "Minimum detectable drift difference against lora" in md
    flat = build_table(get_task("toy"), *_records({"base": 0.5, "lora": 0.5, "new": 0.1}))
    assert set(flat.gate_verdict) == {"no drift"}
    assert "no drift on this model" in write_report(flat, tmp_path, "r", {})["md"].read_text()


def test_the_tradeoff_plot_zooms_to_the_data():
    """Financial-like numbers (drift near 0.1, task near 0.5) fill the axes instead of sitting in
    a corner of a 0..1 frame."""
    import pandas as pd

    from grasp_bench.evaluate.report import tradeoff_figure

    df = pd.DataFrame({"method": ["a", "b"], "drift": [0.10, 0.14], "drift_lo": [0.08, 0.12],
                       "drift_hi": [0.12, 0.16], "task": [0.50, 0.52], "task_lo": [0.48, 0.5],
                       "task_hi": [0.52, 0.54]})  # fmt: skip
    fig, _ = tradeoff_figure(df, "t")
    (x0, x1), (y0, y1) = fig.axes[0].get_xlim(), fig.axes[0].get_ylim()
    assert 0.0 < x0 < 0.08 and 0.16 < x1 < 0.3 and 0.4 < y0 < 0.48 and 0.54 < y1 < 0.6
