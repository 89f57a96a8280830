"""``grasp-bench tasks --stats``: what a generator's rows really hold."""

from __future__ import annotations

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


def test_the_medical_generator_is_reported_as_the_few_answers_it_has():
    data, n = build_largest("medical", 6000)
    assert n < 6000 and len(data.train) == n  # the generator's own limit, not an error
    out = CliRunner().invoke(app, ["tasks", "--stats", "--n-train", "200"]).output
    assert "smoke-test data" in out and "medical" in out and "distinct targets" in out
