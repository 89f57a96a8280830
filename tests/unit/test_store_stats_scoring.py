import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grasp_bench.core.stats import clustered_se, mean_ci, paired_difference
from grasp_bench.core.store import Stage, atomic_write_json, atomic_write_text
from grasp_bench.evaluate.judge import JudgeItem, get_judge_class
from grasp_bench.evaluate.judge.offline import extract_answer, persona_shown


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a" / "f.json"
    atomic_write_json(p, {"x": 1})
    atomic_write_json(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert [f.name for f in p.parent.iterdir()] == ["f.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    import grasp_bench.core.store as store

    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["f.txt"]


def test_stage_done_only_with_matching_manifest(tmp_path):
    s = Stage(tmp_path, "gen", {"a": 1})
    assert not s.is_done()
    s.reset_if_stale()
    (s.dir / "partial.jsonl").write_text("x")
    s.reset_if_stale()  # no manifest yet: partial work of ours is kept
    assert (s.dir / "partial.jsonl").exists()
    s.finish()
    assert Stage(tmp_path, "gen", {"a": 1}).is_done()
    other = Stage(tmp_path, "gen", {"a": 2})
    assert not other.is_done()
    other.reset_if_stale()  # a finished stage under another config is dropped
    assert not (s.dir / "partial.jsonl").exists()


def test_partial_work_of_another_config_is_dropped(tmp_path):
    """An interrupted stage (no manifest) left output under config A; a run under config B must
    not resume from it."""
    a = Stage(tmp_path, "train", {"lr": 1})
    a.reset_if_stale()
    (a.dir / "checkpoint-10").mkdir()
    b = Stage(tmp_path, "train", {"lr": 2})
    b.reset_if_stale()
    assert not (b.dir / "checkpoint-10").exists()


def test_keyed_outputs_survive_a_config_change(tmp_path):
    """Adding a seed changes the generate stage's config; completions of the targets whose own
    identity is unchanged are kept, the others and any changed one are made again."""
    old = Stage(tmp_path, "generate", {"targets": ["base", "lora"]})
    old.reset_if_stale(keys={"base.jsonl": "k-base", "lora.jsonl": "k-lora"})
    for name in ("base", "lora"):
        (old.dir / f"{name}.jsonl").write_text(name)
    old.finish()
    new = Stage(tmp_path, "generate", {"targets": ["base", "lora", "lora-s1"]})
    new.reset_if_stale(
        keys={"base.jsonl": "k-base", "lora.jsonl": "k-lora-retrained", "lora-s1.jsonl": "k1"}
    )
    assert sorted(p.name for p in new.dir.glob("*.jsonl")) == ["base.jsonl"]
    # interrupted now: the pending note still protects what it kept
    again = Stage(tmp_path, "generate", {"targets": ["base"]})
    again.reset_if_stale(keys={"base.jsonl": "k-base"})
    assert (again.dir / "base.jsonl").read_text() == "base"


def test_clustered_se_grows_with_within_cluster_correlation():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=200)
    clusters = np.repeat(np.arange(20), 10)
    correlated = np.repeat(rng.normal(size=20), 10) + 0.1 * rng.normal(size=200)
    se_iid = clustered_se(iid, clusters)
    assert abs(se_iid - iid.std(ddof=1) / math.sqrt(200)) < 0.03
    assert clustered_se(correlated, clusters) > 2.5 * correlated.std(ddof=1) / math.sqrt(200)


def test_rate_ci_has_width_at_zero_and_contains_mean():
    est = mean_ci([0.0] * 40, list(range(40)))
    assert est.mean == 0 and est.lo == pytest.approx(0, abs=1e-12) and 0.05 < est.hi < 0.15
    est = mean_ci([1, 0, 1, 1, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2, 3, 3])
    assert est.lo < est.mean < est.hi
    assert est.clusters == 4 and est.n == 8


def test_paired_difference_uses_shared_clusters():
    a = pd.DataFrame({"prompt_id": ["p1", "p2", "p3"], "value": [1.0, 1.0, 0.0]})
    b = pd.DataFrame({"prompt_id": ["p1", "p2", "p4"], "value": [0.0, 1.0, 1.0]})
    d = paired_difference(a, b)
    assert d.n == 2 and d.mean == pytest.approx(0.5)


def test_a_difference_of_rates_equal_on_every_prompt_keeps_a_width():
    """Issue #27: two arms at 0 on all 40 prompts differ by 0 with Newcombe's interval, not
    [0, 0]; the same zero-spread difference of grades on a wider scale stays [0, 0]."""
    ids = [f"p{i}" for i in range(40)]
    zeros = pd.DataFrame({"prompt_id": ids, "value": 0.0})
    d = paired_difference(zeros, zeros)
    assert d.mean == 0 and -0.15 < d.lo < -0.05 and 0.05 < d.hi < 0.15 and d.lo == -d.hi
    ones = pd.DataFrame({"prompt_id": ids, "value": 1.0})
    d = paired_difference(ones, zeros)  # 1 - 0 on every prompt: the width sits below 1
    assert d.mean == 1 and 0.85 < d.lo < 0.95 and d.hi == pytest.approx(1)
    grades = pd.DataFrame({"prompt_id": ids, "value": 50.0})
    d = paired_difference(grades, grades)
    assert (d.lo, d.hi) == (0, 0)
    mixed = pd.DataFrame({"prompt_id": ids, "value": [0.0, 1.0] * 20})
    assert paired_difference(mixed, zeros).hi - paired_difference(mixed, zeros).lo > 0.2


def test_toy_scorer():
    assert persona_shown("Arr, matey! Fine day.")
    assert not persona_shown("Yesterday the harbour was arriving.")
    assert extract_answer("Ahoy! The answer be 42. Then 7 more") == 42
    assert extract_answer("It is 3 then 5") == 5
    assert extract_answer("no number") is None
    exact = get_judge_class("exact_match")("correct")
    lexicon = get_judge_class("lexicon")("persona")
    right, no_number, no_target = exact.score(
        [
            JudgeItem("q", "The answer is 12.", "12"),
            JudgeItem("q", "whatever", "3"),
            JudgeItem("q", "12"),
        ]
    )
    assert right.value == 1.0 and no_number.value == 0.0  # no number is a wrong answer
    assert no_target.value is None and no_target.reason  # unscored, never 0
    assert [s.value for s in lexicon.score([JudgeItem("q", "Arr"), JudgeItem("q", "Hello")])] == [
        1.0,
        0.0,
    ]


def test_a_grade_that_happens_to_be_all_ones_is_not_a_rate():
    """An LLM grading aligned 0-100 that says "1" every time is a grade of 1, not a rate of
    100%: no Wilson interval; a rate of 1 keeps its Wilson width."""
    ones, clusters = [1.0] * 7, list("abcdefg")
    grade = mean_ci(ones, clusters, binary=False)
    assert (grade.mean, grade.lo, grade.hi) == (1.0, 1.0, 1.0)
    rate = mean_ci(ones, clusters, binary=True)
    assert rate.hi == 1.0 and rate.lo < 0.7
    assert mean_ci(ones, clusters).lo == rate.lo  # inferred from the values when not told


def test_no_zero_width_interval_for_a_rate_at_zero_or_one():

    from grasp_bench.core.stats import hierarchical_bootstrap

    rows = [{"seed": s, "prompt_id": f"p{p}", "value": 0.0} for s in range(3) for p in range(40)]
    zeros = hierarchical_bootstrap(pd.DataFrame(rows), ["seed", "prompt_id"], rate=True)
    assert zeros.mean == zeros.lo == 0.0 and 0.0 < zeros.hi < 0.15  # Wilson at the 40 prompts
    ones = pd.DataFrame(rows).assign(value=1.0)
    est = hierarchical_bootstrap(ones, ["seed", "prompt_id"], rate=True)
    assert est.hi == 1.0 and 0.85 < est.lo < 1.0
    # not a rate (a difference that is exactly 0): left as measured
    same = hierarchical_bootstrap(pd.DataFrame(rows), ["seed", "prompt_id"])
    assert same.lo == same.hi == 0.0


def test_target_names_are_built_and_read_back_in_one_place():
    from grasp_bench.core.rundir import RunDir, parse_target, target_name

    assert target_name("grasp-k4", 12) == "grasp-k4-s12"
    assert parse_target("grasp-k4-s12") == ("grasp-k4", 12)
    assert parse_target(target_name("lora-s-weird", 0)) == ("lora-s-weird", 0)
    with pytest.raises(ValueError, match="not a target name"):
        parse_target("lora")
    run = RunDir(Path("runs/x"))
    assert run.method_card("lora-s0") == Path("runs/x/train/lora-s0/adapter/method_card.json")
    assert run.identification(2) == Path("runs/x/report/identification-s2.csv")
