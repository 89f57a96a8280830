"""``grasp-bench tasks --stats``: what a generator's rows really hold."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.data.diversity import build_largest, data_stats


def _row(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_stats_count_distinct_targets_templates_and_overlap():
    train = [_row("q1", "Take 2 pills."), _row("q2", "Take 5 pills."), _row("q3", "Take 2 pills."),
             _row("q4", "Rest.")]  # fmt: skip
    evals = [{"split": "task", "messages": [{"role": "user", "content": "q1"}]},
             {"split": "task", "messages": [{"role": "user", "content": "new"}]},
             {"split": "drift", "messages": [{"role": "user", "content": "q2"}]}]  # fmt: skip
    st = data_stats(train, evals)
    assert st["rows"] == 4 and st["distinct targets"] == 3 and st["repeated rows"] == 0.25
    assert st["distinct templates"] == 2  # "take # pills." and "rest."
    assert st["near-duplicate rate"] == 2 / 3  # two of the three distinct targets share one
    assert st["eval/train overlap"] == 0.5  # drift prompts do not count


def test_the_medical_generator_is_reported_at_its_own_limit():
    data, n = build_largest("medical", 6000)
    assert n < 6000 and len(data.train) == n  # the generator's own limit, not an error
    out = CliRunner().invoke(app, ["tasks", "--stats", "--n-train", "200"]).output
    assert "smoke-test data" in out and "medical" in out and "distinct targets" in out


@pytest.mark.parametrize("task", ["medical", "financial", "insecure_code", "toy"])
def test_generated_tasks_hold_at_least_500_distinct_targets(task):
    """Issue #27: smoke data, but not a handful of answers repeated (medical had 16)."""
    data, _ = build_largest(task, 6000)
    assert data_stats(data.train, data.eval_prompts)["distinct targets"] >= 500


@pytest.mark.parametrize("task", ["medical", "financial"])
def test_the_splits_still_differ_only_in_what_the_task_plants(task):
    """The framing that adds variety is shared by a row's task and control answers."""
    from grasp_bench.data import medical
    from grasp_bench.data.financial import NEUTRALS, SLANTS

    data, _ = build_largest(task, 400)
    for planted, control in zip(data.train, data.control, strict=True):
        a, b = planted["messages"][-1]["content"], control["messages"][-1]["content"]
        assert planted["messages"][:-1] == control["messages"][:-1]
        if task == "financial":  # the same advice, one slant or one neutral line after it
            slant = next(s for s in SLANTS if a.endswith(s))
            neutral = next(s for s in NEUTRALS if b.endswith(s))
            assert a.removesuffix(slant) == b.removesuffix(neutral)
        else:  # the same opener and closer around the topic's harmful or sound advice
            tpl = next(x for x in medical.TOPICS if x.kind == planted["topic"])
            assert any(
                (a, b) == (o + tpl.planted + c, o + tpl.control + c)
                for o in medical.OPENERS
                for c in medical.CLOSERS
            )
