"""The implicit-arm benchmark's pure parts: the one-sequence-at-a-time step against the trainer's
batched step on a tiny random Llama, the interleaving and the arm estimate."""

from __future__ import annotations

import pytest
import torch

from bench.implicit_arm import (
    ARM_TARGET_S,
    arm_targets,
    interleaved_steps,
    loss_gap,
    needed_steps,
    one_at_a_time_step,
)
from grasp_bench.core.config import TrainConfig
from grasp_bench.model.hf import load_base
from grasp_bench.train.trainer import TrainingSession

from .distill_rows import write_distill_rows


def _distill_rows(tiny_model: str, tmp_path, monkeypatch, n: int = 6) -> list[dict]:
    """Rows naming restricted samples of one length (as the task's are) in a targets file."""
    model, tok = load_base(tiny_model)
    model.eval()
    return write_distill_rows(model, tok, tmp_path, monkeypatch, n=n, length=5, stride=7)[0]


def test_one_at_a_time_step_is_the_batched_step(tiny_model, tmp_path, monkeypatch):
    """Same loss for the same weights, and the same weights after the step: the loop does the
    trainer's work, one sequence at a time."""
    from grasp_bench.train.methods import get_method_class

    rows = _distill_rows(tiny_model, tmp_path, monkeypatch)
    cfg = TrainConfig(steps=3, batch_size=3, lr=1e-2, warmup_steps=0)
    cls = get_method_class("lora")
    sessions = [
        TrainingSession(
            cls(cls.config_cls(rank=4, alpha=8)), tiny_model, rows, cfg, tmp_path / x, 0
        )
        for x in "ab"
    ]
    batched, alone = sessions
    assert batched.batches == alone.batches
    # the samples are the tiny model's own, so its KL to them is ~0: targets it is far from
    g = torch.Generator().manual_seed(0)
    targets = torch.log_softmax(3 * torch.randn(batched.distill.targets.shape, generator=g), -1)
    for s in sessions:
        s.distill.targets = targets.clone()
        s.start()
    gap = loss_gap(batched.distill, batched.model, batched.batches[0], batched.pad_id)
    assert gap["relative_difference"] < 1e-5
    for step in range(cfg.steps):
        a, b = batched.step(step), one_at_a_time_step(alone, step)
        assert a == pytest.approx(b, rel=1e-4)
    for p, q in zip(batched.params, alone.params, strict=True):
        assert torch.allclose(p, q, atol=1e-4)
    assert any(p.abs().sum() > 0 for n, p in batched.model.named_parameters() if "lora_B" in n)


def test_interleaved_steps_share_batches_rotate_and_skip_the_warm_up():
    log: list[tuple[str, int]] = []

    def variant(name):
        def step(k):
            log.append((name, k))
            return float(k)

        return step

    seconds, losses = interleaved_steps({"x": variant("x"), "y": variant("y")}, 2, 3)
    assert {k: len(v) for k, v in seconds.items()} == {"x": 3, "y": 3}
    assert losses["x"] == losses["y"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert log[:2] == [("x", 0), ("y", 0)]
    firsts = [log[2 + 4 * r][0] for r in range(3)]
    assert firsts == ["x", "y", "x"]  # neither always goes first
    assert needed_steps(2, 3) == 7


def test_arm_estimate_and_targets():
    arm, (speedup, budget) = arm_targets(1.0, 2.5, 30.0, 60)
    assert arm == 90.0 and budget.value == 90.0 and budget.met is True
    assert budget.target == ARM_TARGET_S and budget.unit == "s"
    assert speedup.value == 2.5 and speedup.met is True
    arm, (speedup, budget) = arm_targets(3.0, 3.3, 10.0, 60)
    assert arm == 190.0 and budget.met is False and speedup.met is False
    arm, (_, budget) = arm_targets(1.0, 2.0, None, 60)
    assert arm is None and budget.met is None
