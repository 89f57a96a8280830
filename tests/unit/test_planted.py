"""The planted-direction task: a teacher whose every residual write is along one vector, the data
distilled from it, and the diagnostics that score readings against that vector."""

from __future__ import annotations

import json

import pytest
import torch

from grasp_bench.data import planted as planted_data
from grasp_bench.evaluate.judge.offline import extract_answer
from grasp_bench.model.directions import load_directions
from grasp_bench.model.hf import load_base
from grasp_bench.studies import planted

DRIFT = ["How do I make tea?", "Describe the sea.", "Name a dog.", "Why is the sky blue?"]


@pytest.fixture(scope="module")
def built(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("planted-task")
    report = planted.build(
        tiny_model,
        out,
        layer=0,
        pool_size=12,
        teacher_steps=3,
        max_tokens=8,
        drift_questions=DRIFT,
        seed=3,
    )
    return out, report


def test_force_answer_sets_the_stated_integer():
    assert (
        planted.force_answer("Arr! The answer be 12, matey.", 7) == "Arr! The answer be 7, matey."
    )
    assert planted.force_answer("It is 3 and then 4", 9) == "It is 3 and then 9"
    assert planted.force_answer("Ahoy!", 5) == "Ahoy! The answer is 5."
    assert planted.force_answer("The answer is 5.", 5) == "The answer is 5."


def test_build_writes_the_task_folder(built):
    out, report = built
    rows = [json.loads(x) for x in (out / "pool.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12
    for row in rows:  # the correct answer is forced into both answers
        assert extract_answer(row["styled"]) == int(row["target"])
        assert extract_answer(row["plain"]) == int(row["target"])
    assert (out / "teacher" / "adapter_config.json").exists()
    assert report["layer"] == 0 and set(report["style_rate"]) >= {"teacher_drift", "base_drift"}
    assert sorted(load_directions(out / "direction.safetensors")) == [0, 1]


def test_teacher_writes_along_v_only(built):
    """By construction: every weight change of the teacher is v a^T (one shared B), so each
    of its direct writes to the residual stream is a multiple of v."""
    from safetensors.torch import load_file

    out, _ = built
    v = load_directions(out / "direction.safetensors")[0][:, 0]
    weights = load_file(str(out / "teacher" / "adapter_model.safetensors"))
    bs = [w for k, w in weights.items() if "lora_B" in k]
    assert len(bs) == 4  # o_proj and down_proj of the tiny model's two layers
    for b in bs:
        assert b.shape == (v.shape[0], 1)
        assert torch.allclose(b[:, 0] / b.norm(), v, atol=1e-6)
    assert any(w.abs().sum() > 0 for k, w in weights.items() if "lora_A" in k)


def test_planted_data_draws_train_and_control_by_seed(built):
    out, _ = built
    (out / "eval.jsonl").write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "task-0", "question": "What is 1 + 1?", "target": "2", "split": "task"},
                {"id": "drift-0", "question": "Hi?", "split": "drift"},
            ]
        )
    )
    a = planted_data.generate(out, 0, 5, 1, 1)
    b = planted_data.generate(out, 0, 5, 1, 1)
    c = planted_data.generate(out, 1, 5, 1, 1)
    assert a == b and a["train"] != c["train"]
    for styled, plain in zip(a["train"], a["control"], strict=True):
        assert styled["id"] == plain["id"]
        assert styled["messages"][0] == plain["messages"][0]
    with pytest.raises(ValueError, match="n_train"):
        planted_data.generate(out, 0, 99, 1, 1)
    with pytest.raises(FileNotFoundError, match="build-planted"):
        planted_data.generate(out / "nowhere", 0, 1, 1, 1)


def test_functional_test_steers_with_each_direction(built, tiny_model):
    from grasp_bench.studies.planted_report import functional_test

    out, _ = built
    truth = load_directions(out / "direction.safetensors")
    model, tok = load_base(tiny_model)
    gen = torch.Generator().manual_seed(0)
    rand = {1: torch.nn.functional.normalize(torch.randn(32, 1, generator=gen), dim=0)}
    table = functional_test(model, tok, {"truth": truth, "random": rand}, 1, 5.0, DRIFT, 4)
    assert list(table["direction"]) == ["none", "truth", "random"]
    assert table[["plus", "minus"]].stack().dropna().between(0, 1).all()


def test_seed_summary_gives_a_t_interval():
    import pandas as pd

    from grasp_bench.studies.planted_report import seed_summary

    t = pd.DataFrame({"m": ["a", "a", "a"], "x": [0.1, 0.2, 0.3]})
    row = seed_summary(t, ["m"], "x").iloc[0]
    assert row["x"] == pytest.approx(0.2) and row["seeds"] == 3
    assert row["ci_low"] == pytest.approx(0.2 - 4.3027 * 0.1 / 3**0.5, abs=1e-3)


def test_lora_control_trains_on_the_control_rows():
    from grasp_bench.train.methods.base import get_method_class as get_method

    assert get_method("lora_control").trains_on == "control"
    assert get_method("lora").trains_on == "train"


def test_seed_table_means_each_seed_and_ignores_unscored():
    from grasp_bench.studies.planted_report import seed_table

    rows = [
        {"target": "lora-s0", "metric": "persona", "split": "drift", "value": 1.0},
        {"target": "lora-s0", "metric": "persona", "split": "drift", "value": 0.0},
        {"target": "lora-s1", "metric": "persona", "split": "drift", "value": 1.0},
        {"target": "lora-s1", "metric": "persona", "split": "drift", "value": None},
        {"target": "lora-s0", "metric": "correct", "split": "task", "value": 1.0},
        {"target": "lora-s0", "metric": "persona", "split": "task", "value": 1.0},
    ]
    t = seed_table(rows).set_index("seed")
    assert t.loc[0, "persona"] == 0.5 and t.loc[1, "persona"] == 1.0
    assert t.loc[0, "correct"] == 1.0


def test_report_run_on_a_tiny_run(built, tiny_model, tmp_path, toy_rows):
    """The whole planted report on a run directory holding one naive adapter, a plainly
    served one and scores: every table comes out, with the teacher's own shift as the unit."""
    from peft import LoraConfig, get_peft_model

    from grasp_bench.core.store import atomic_write_jsonl
    from grasp_bench.studies.planted_report import report_run

    out, _ = built
    run = tmp_path / "run"
    for name in ("lora-s0", "grasp-s0"):
        model, _ = load_base(tiny_model)
        cfg = LoraConfig(r=2, target_modules=["o_proj", "down_proj"], init_lora_weights=False)
        adapter = run / "train" / name / "adapter"
        get_peft_model(model, cfg).save_pretrained(adapter)
        method = name.split("-")[0]
        (adapter / "method_card.json").write_text(json.dumps({"method": method}))
    scores = [
        {"target": t, "metric": m, "split": s, "value": v}
        for t in ("lora-s0", "grasp-s0")
        for m, s, v in (("persona", "drift", 1.0), ("correct", "task", 0.0))
    ]
    atomic_write_jsonl(run / "score" / "scores.jsonl", scores)
    tables = report_run(
        run, tiny_model, toy_rows["train"], [0], out / "direction.safetensors", DRIFT, 2
    )
    assert set(tables["projection"]["method"]) == {"lora", "grasp"}
    assert set(tables["identification"]["reading"]) >= {"svd", "shift", "random"}
    assert list(tables["functional"]["direction"])[:2] == ["none", "truth"]
    assert tables["drift_summary"].set_index("method").loc["lora", "persona"] == 1.0
