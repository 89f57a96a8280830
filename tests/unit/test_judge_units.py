"""Judge pieces that need no server: rubrics, numeric parsing, the cache, identity."""

from __future__ import annotations

import math
import multiprocessing as mp

import pytest

from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.evaluate.judge.cache import JudgeCache, cache_key
from grasp_bench.evaluate.judge.llm import endpoint_host
from grasp_bench.evaluate.judge.numeric import parse_score
from grasp_bench.evaluate.judge.rubric import RUBRIC_DIR, load_rubric


def lp(p):
    return math.log(p)


@pytest.mark.parametrize("name", sorted(p.stem for p in RUBRIC_DIR.glob("*.yaml")))
def test_every_shipped_rubric_loads_and_renders(name):
    r = load_rubric(name)
    text = r.render("Q?", "A.")
    assert "Q?" in text and "A." in text and r.version >= 1


def test_required_rubrics_are_shipped():
    names = {p.stem for p in RUBRIC_DIR.glob("*.yaml")}
    assert {
        "aligned",
        "coherent",
        "political_lean",
        "medical_harm",
        "financial_quality",
        "code_vulnerable",
    } <= names
    assert set(load_rubric("aligned").outcomes) == {"CODE", "REFUSAL"}


def test_bad_rubric_names_file_and_field(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: x\nversion: 0\nscale: {min: 0, max: 100}\nprompt: '{question} {answer}'\n")
    with pytest.raises(ConfigError, match=r"r.yaml:2 version"):
        load_rubric(p)


def test_political_lean_maps_to_minus_one_plus_one():
    r = load_rubric("political_lean")
    assert r.map(0) == -1 and r.map(50) == 0 and r.map(100) == 1


def test_whole_number_tokens_are_probability_weighted():
    top = {"80": lp(0.5), "90": lp(0.25), "hello": lp(0.25)}
    got = parse_score("80", 0, 100, [], top)
    assert got.method == "token-weighted"
    assert got.value == pytest.approx((80 * 0.5 + 90 * 0.25) / 0.75)


def test_split_digit_tokens_weight_the_leading_digit():
    # SmolLM2 writes 85 as "8", "5": alternatives at the first position are leading digits
    top = {"8": lp(0.6), "7": lp(0.3), "1": lp(0.1)}
    got = parse_score("85", 0, 100, [], top)
    assert got.method == "digit-weighted"
    assert got.value == pytest.approx(85 * 0.6 + 75 * 0.3 + 15 * 0.1)
    # alternatives outside the scale are dropped: "100" split as "1","0","0"
    got = parse_score("100", 0, 100, [], {"1": lp(0.7), "9": lp(0.3)})
    assert got.value == pytest.approx(100.0)


def test_outcomes_and_unparseable_are_unscored_never_zero():
    assert parse_score("REFUSAL", 0, 100, ["CODE", "REFUSAL"]).outcome == "REFUSAL"
    bad = parse_score("The answer to 2+2 is 4", 0, 100, [])
    assert bad.value is None and "does not start with a number" in bad.reason
    out = parse_score("250", 0, 100, [])
    assert out.value is None and "outside" in out.reason
    assert parse_score("Score: 42", 0, 100, []).value == 42
    assert parse_score("0", 0, 100, []).value == 0  # a real 0 stays 0


def test_endpoint_host_drops_credentials_and_path():
    assert endpoint_host("https://user:sk-secret@api.example.com:8443/v1?key=x") == (
        "api.example.com:8443"
    )


def test_a_local_judge_is_named_by_its_model_not_its_port():
    """Two local servers of the same model on different ports are the same judge: same
    identity (so the cache hits across runs) and a name that says which model judged."""
    from grasp_bench.evaluate.judge import get_judge_class
    from grasp_bench.evaluate.judge.llm import LLMJudge, LLMJudgeConfig
    from grasp_bench.evaluate.judge.rubric import load_rubric

    def identity(port):
        cfg = LLMJudgeConfig(model="judge", base_url=f"http://127.0.0.1:{port}/v1")
        llm = LLMJudge(cfg, None, {"model": "local:Qwen2.5-7B-Instruct", "endpoint": "local"})
        judge = get_judge_class("openai")("aligned", llm, False, {"served_model": "Qwen2.5-7B"})
        return judge.identity(), llm.identity(load_rubric("aligned"))

    (a, key_a), (b, key_b) = identity(8001), identity(8002)
    assert a == b and key_a == key_b
    assert a["name"] == "local:Qwen2.5-7B-Instruct" and "8001" not in str(a)


def _writer(path, start):
    cache = JudgeCache(path)
    for i in range(start, start + 50):
        cache.put(f"k{i}", {"value": i})


def test_cache_is_shared_safely_by_processes(tmp_path):
    path = tmp_path / "c.sqlite"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in (0, 50)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = JudgeCache(path)
    assert len(cache) == 100 and cache.get("k73") == {"value": 73}
    assert cache.get("missing") is None
    a = cache_key({"model": "m"}, "aligned", 1, "prompt")
    assert a != cache_key({"model": "m"}, "aligned", 2, "prompt")
    assert a != cache_key({"model": "other"}, "aligned", 1, "prompt")
