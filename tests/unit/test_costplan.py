"""The cost plan: parameter counts from a model's shape, the FLOPs model's arithmetic, and the
sweep command's --plan table (nothing is started, no model is resolved)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.run.costplan import Assumptions, Shape, model_shape, plan_sweep_cost
from grasp_bench.run.sweep import load_sweep, plan_sweep

from ..conftest import REPO


def test_parameter_counts_match_the_published_sizes(tmp_path):
    assert model_shape("Qwen/Qwen2.5-7B-Instruct").params == pytest.approx(7.62e9, rel=0.01)
    assert model_shape("Qwen/Qwen2.5-32B-Instruct").params == pytest.approx(32.8e9, rel=0.01)
    assert model_shape("default").params == pytest.approx(1.35e8, rel=0.02)  # tied embeddings
    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100,
        "num_attention_heads": 4}))  # fmt: skip
    local = model_shape(str(tmp_path))
    assert local == Shape(64, 2, 128, 100, 4, 4, False)
    assert local.matmul_params == local.params - 100 * 64  # the lookup is no matmul
    assert local.params == 2 * (4 * 64 * 64 + 3 * 64 * 128) + 2 * 100 * 64
    assert model_shape("someone/unknown-model") is None


def test_the_plan_scales_with_seeds_steps_and_checkpointing():
    runs = plan_sweep(load_sweep(REPO / "experiments" / "sweeps" / "paper.yaml"))
    a = Assumptions()
    rows = plan_sweep_cost(runs, a)
    assert len(rows) == len(runs) + 1 and rows[-1]["run"] == "total"
    first = rows[0]
    exp = runs[0].exp.config
    per_arm = exp.train.steps * exp.train.batch_size * a.tokens_per_example
    assert first["train tokens"] == per_arm * first["trained arms"]
    shape = model_shape(exp.model)
    flops = (6 if exp.train.gradient_checkpointing else 4) * shape.matmul_params
    flops *= first["train tokens"]
    assert first["train gpu h"] == pytest.approx(flops / (a.peak_tflops * 1e12 * a.mfu) / 3600)
    assert rows[-1]["train gpu h"] == pytest.approx(sum(r["train gpu h"] for r in rows[:-1]))
    assert rows[-1]["judge usd"] > 0 and rows[-1]["judge calls"] > 0


def test_sweep_plan_prints_the_table_and_starts_nothing(tmp_path, monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("--plan must not run anything")

    monkeypatch.setattr("grasp_bench.run.sweep.run_sweep", no)
    got = CliRunner().invoke(
        app, ["sweep", str(REPO / "experiments/sweeps/paper.yaml"), "--plan",
              "--judge-price", "1,4"])  # fmt: skip
    assert got.exit_code == 0, got.output
    assert "What the sweep will cost" in got.output and "GPU-h training" in got.output
    assert "judge_price=(1.0, 4.0)" in got.output
    bad = CliRunner().invoke(
        app, ["sweep", str(REPO / "experiments/sweeps/paper.yaml"), "--plan", "--judge-price", "x"]
    )
    assert bad.exit_code == 2 and "IN,OUT" in bad.output
