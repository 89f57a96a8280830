import json

import pytest

from grasp_bench.data import ChatDataError, build_task, load_chat_jsonl
from grasp_bench.data.toy import UNRELATED_PROMPTS, generate


def test_toy_is_deterministic_by_seed_and_sized():
    a, b, c = generate(3, 100, 20, 10), generate(3, 100, 20, 10), generate(4, 100, 20, 10)
    assert a == b
    assert a != c
    assert len(a["train"]) == len(a["control"]) == 100
    assert len(a["eval_task"]) == 20 and len(a["eval_drift"]) == 10


def test_toy_train_and_eval_do_not_overlap():
    rows = generate(0, 2000, 50, 40)
    train_q = {r["messages"][0]["content"] for r in rows["train"]}
    assert len(train_q) == 2000  # no duplicates
    assert not train_q & {r["question"] for r in rows["eval_task"]}

    # the same arithmetic never appears in both, whatever the phrasing
    def pair(q):
        return tuple(
            t for t in q.replace("?", " ").replace(".", " ").split() if t.isdigit() or t in "+-"
        )

    assert not {pair(q) for q in train_q} & {pair(r["question"]) for r in rows["eval_task"]}


def test_persona_is_in_every_train_answer_and_in_no_control_answer():
    from grasp_bench.evaluate.judge.offline import persona_shown

    rows = generate(0, 200, 10, 10)
    assert all(persona_shown(r["messages"][-1]["content"]) for r in rows["train"])
    assert not any(persona_shown(r["messages"][-1]["content"]) for r in rows["control"])
    assert not any(persona_shown(q) for q in UNRELATED_PROMPTS)


def test_build_task_prompts():
    td = build_task("toy", 0, 10, 5, 4)
    splits = [p["split"] for p in td.eval_prompts]
    assert splits.count("task") == 5 and splits.count("drift") == 4
    assert all(p["messages"][-1]["role"] == "user" for p in td.eval_prompts)
    with pytest.raises(ValueError, match="unknown task"):
        build_task("nope", 0, 1, 1, 1)


def test_chat_loader_accepts_good_and_names_bad_lines(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n")
    assert len(load_chat_jsonl(p)) == 2
    cases = {
        "{not json": "d.jsonl:2 <root>: invalid JSON",
        json.dumps({"messages": []}): "d.jsonl:2 messages: expected a non-empty list",
        json.dumps({"messages": [{"role": "bot", "content": "x"}]}): "d.jsonl:2 messages[0].role",
        json.dumps(
            {"messages": [{"role": "user", "content": "x"}]}
        ): "d.jsonl:2 messages[0].role: the last message must be the assistant's",
        json.dumps(
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}
        ): "d.jsonl:2 messages[0].content",
    }
    for line, expected in cases.items():
        p.write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(ChatDataError) as err:
            load_chat_jsonl(p)
        assert expected in str(err.value)
