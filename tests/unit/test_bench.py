"""The benchmark harness: targets, cost fits, interleaving and the latest.md report."""

from __future__ import annotations

import json

import pytest

from bench.common import Target, fit_linear, targets_table
from bench.run_all import BENCHMARKS, report
from bench.step_time import interleaved


def test_target_met_missed_and_unmeasured():
    assert Target("speed-up", 2.0, 1.5).met is True
    assert Target("speed-up", 1.2, 1.5).met is False
    assert Target("ratio", 1.05, 1.10, higher_is_better=False).met is True
    assert Target("ratio", 1.2, 1.10, higher_is_better=False).met is False
    assert Target("ratio", None, 1.10).met is None
    rows = "\n".join(targets_table([Target("a", 1.2, 1.5), Target("b", None, 2.0)]))
    assert "**missed**" in rows and "not measured" in rows and ">= 1.5 x" in rows


def test_fit_recovers_a_linear_cost_and_refuses_one_size():
    fit = fit_linear([8, 16, 32], [3 + 0.5 * n for n in (8, 16, 32)])
    assert fit["fixed_s"] == pytest.approx(3) and fit["per_item_s"] == pytest.approx(0.5)
    assert fit["r2"] == pytest.approx(1)
    with pytest.raises(ValueError):
        fit_linear([8, 8], [1, 2])


class _Session:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def step(self, step):
        self.log.append((step, self.name))
        return 0.0


def test_interleaving_rotates_the_order_and_drops_the_warm_up_round():
    log: list = []
    sessions = {n: _Session(n, log) for n in "abc"}
    seconds = interleaved(sessions, rounds=3)
    assert {k: len(v) for k, v in seconds.items()} == {"a": 3, "b": 3, "c": 3}
    firsts = [name for step, name in log[::3]]
    assert firsts == ["a", "b", "c", "a"]  # nobody always goes first
    assert [step for step, _ in log] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_latest_report_lists_every_target_and_each_benchmark(tmp_path):
    name = BENCHMARKS[0][0]
    result = {"targets": [Target("x over y", 0.8, 1.0).row(), Target("z", 3.0, 2.0).row()]}
    (tmp_path / f"{name}.json").write_text(json.dumps(result))
    (tmp_path / f"{name}.md").write_text("# Its own table\n\n| a |\n")
    text = report({name: {"wall_s": 90.0, "exit": 0}}, tmp_path)
    assert "Targets: 2 of 3 met." in text  # the two above and the whole run's 1.5 <= 20 min
    assert "x over y" in text and "**missed**" in text
    assert "## Its own table" in text and "not counted) 1.5 min" in text
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert [t["met"] for t in latest["targets"]] == [False, True, True]


def test_an_extra_is_listed_as_such_and_kept_out_of_the_round_time(tmp_path):
    from bench.run_all import EXTRAS

    round_name, extra = BENCHMARKS[0][0], EXTRAS[0][0]
    for name in (round_name, extra):
        result = {"targets": [Target(f"{name} ratio", 2.0, 1.5).row()]}
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    walls = {round_name: {"wall_s": 600.0, "exit": 0}, extra: {"wall_s": 900.0, "exit": 0}}
    report(walls, tmp_path)
    latest = json.loads((tmp_path / "latest.json").read_text())
    names = [t["name"] for t in latest["targets"]]
    assert f"extra ({extra}, run by `--only {extra}`): {extra} ratio" in names
    assert f"{round_name} ratio" in names
    whole = next(t for t in latest["targets"] if t["name"].startswith("every benchmark"))
    assert whole["value"] == pytest.approx(10.0)  # 600 s; the extra's 900 s not counted


def test_avx2_demo_estimate_scales_training_and_generation():
    from bench.run_all import avx2_demo_estimate

    results = {
        "end_to_end": {"seconds": {"train": 300.0, "generate": 100.0, "model prepare": 20.0}},
        "throughput": {"avx2_over_native": 1.5},
        "generation": {"runs": {"hf/float32": {"lora_tokens_per_s": 120.0}}},
        "generation_avx2": {"runs": {"hf/float32": {"lora_tokens_per_s": 60.0}}},
    }
    estimate = avx2_demo_estimate(results)
    assert estimate.value == pytest.approx((300 * 1.5 + 100 * 2 + 20) / 60)
    assert estimate.met is False  # 11.2 min > 10
    assert avx2_demo_estimate({"end_to_end": {"seconds": {}}}) is None
