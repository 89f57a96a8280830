"""The shared trainer and the GRASP invariant on a tiny random Llama (fast)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from grasp_bench.core.config import TrainConfig
from grasp_bench.model.directions import adapter_updates, load_directions
from grasp_bench.model.hf import encode_chat, load_base
from grasp_bench.model.modules import UnknownArchitectureError, lora_targets, role_of
from grasp_bench.train.methods import load_recipe
from grasp_bench.train.methods.base import Method, register_method
from grasp_bench.train.methods.simple import PlainLoraConfig
from grasp_bench.train.trainer import train_adapter

from ..conftest import REPO

CFG = TrainConfig(
    steps=6, batch_size=4, lr=5e-3, warmup_steps=1, checkpoint_every=3, max_length=64, threads=2
)


def _lora():
    return load_recipe(REPO / "baselines" / "lora.yaml").method


def test_loss_mask_keeps_only_the_assistant_turn(tiny_model, toy_rows):
    _, tok = load_base(tiny_model)
    msgs = toy_rows["train"][0]["messages"]
    ids, labels = encode_chat(tok, msgs, max_length=512)
    kept = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    decoded = tok.decode(kept)
    assert decoded.startswith(msgs[-1]["content"])
    assert msgs[0]["content"] not in decoded
    assert decoded.rstrip().endswith("<|im_end|>")  # the model learns to stop


def test_train_saves_safetensors_adapter_and_card(tiny_model, toy_rows, tmp_path):
    out = train_adapter(
        _lora(), tiny_model, toy_rows["train"], CFG, tmp_path / "lora", seed=0, progress=False
    )
    assert (out / "adapter_model.safetensors").exists()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    card = json.loads((out / "method_card.json").read_text())
    assert card["method"] == "lora" and card["seed"] == 0 and card["config"]["rank"] == 8
    assert "torch" in card["versions"] and len(card["data_hash"]) == 16
    assert not (tmp_path / "lora" / "checkpoint").exists()


class _Crash(RuntimeError):
    pass


def test_interrupted_training_resumes_to_the_same_adapter(tiny_model, toy_rows, tmp_path):
    full = train_adapter(
        _lora(), tiny_model, toy_rows["train"], CFG, tmp_path / "a", seed=1, progress=False
    )
    crashing = _lora()
    steps = {"n": 0}

    def after_step(model, ctx):
        steps["n"] += 1
        if steps["n"] == 5:
            raise _Crash

    crashing.after_step = after_step  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        train_adapter(
            crashing, tiny_model, toy_rows["train"], CFG, tmp_path / "b", seed=1, progress=False
        )
    assert (tmp_path / "b" / "checkpoint" / "trainable.safetensors").exists()
    resumed = train_adapter(
        _lora(), tiny_model, toy_rows["train"], CFG, tmp_path / "b", seed=1, progress=False
    )
    assert json.loads((resumed / "method_card.json").read_text())["resumed_from_step"] == 3
    a = load_file(full / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def _component_along(updates, directions, model_type):
    """Largest relative component of writers' dW along V (V^T dW) and readers' (dW V)."""
    worst = {"writer": 0.0, "reader": 0.0}
    for name, dw in updates.items():
        role = role_of(name, model_type)
        layer = int(name.split(".layers.")[1].split(".")[0])
        v = directions[layer].double()
        comp = (v.T @ dw) if role == "writer" else (dw @ v)
        worst[role] = max(worst[role], float(comp.norm() / dw.norm()))
    return worst


@pytest.mark.parametrize("overrides", [{}, {"scope": "pooled", "k": 2}])
def test_grasp_update_has_no_component_along_v_and_base_is_untouched(
    overrides, tiny_model, toy_rows, tmp_path
):
    lora = train_adapter(
        _lora(), tiny_model, toy_rows["train"], CFG, tmp_path / "lora", seed=0, progress=False
    )
    grasp = load_recipe(REPO / "baselines" / "grasp.yaml", overrides=overrides).method
    before = {k: v.clone() for k, v in load_base(tiny_model)[0].state_dict().items()}
    out = train_adapter(
        grasp,
        tiny_model,
        toy_rows["train"],
        CFG,
        tmp_path / "grasp",
        seed=0,
        dependencies={"lora": lora},
        progress=False,
    )
    v = load_directions(tmp_path / "grasp" / "directions.safetensors")
    lora_comp = _component_along(adapter_updates(lora), v, "llama")
    grasp_comp = _component_along(adapter_updates(out), v, "llama")
    for role in ("writer", "reader"):
        assert grasp_comp[role] * 100 <= lora_comp[role], (role, grasp_comp, lora_comp)
    assert grasp_comp["writer"] < 1e-5
    after = load_base(tiny_model)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    card = json.loads((out / "method_card.json").read_text())
    assert card["before_training"]["projected_modules"] == 2 * 7  # 2 layers x 7 modules


def test_a_method_registered_outside_the_package_trains(tiny_model, toy_rows, tmp_path):
    calls = {"steps": 0}

    @register_method("test_counting_lora")
    class CountingLora(Method):
        """A user's method: plain LoRA that counts optimiser steps."""

        config_cls = PlainLoraConfig

        def after_step(self, model, ctx):
            calls["steps"] += 1

    recipe = tmp_path / "counting.yaml"
    recipe.write_text("method: test_counting_lora\nconfig:\n  rank: 4\n")
    method = load_recipe(recipe).method
    out = train_adapter(
        method, tiny_model, toy_rows["train"], CFG, tmp_path / "c", seed=0, progress=False
    )
    assert calls["steps"] == CFG.steps
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4


def test_module_roles():
    assert lora_targets("llama", "writers") == ["down_proj", "o_proj"]
    assert role_of("base_model.model.model.layers.3.mlp.down_proj", "llama") == "writer"
    assert role_of("transformer.h.0.attn.c_attn", "gpt2") == "reader"
    with pytest.raises(UnknownArchitectureError, match="no residual-stream module map"):
        lora_targets("mamba", "all")


def test_labelled_logits_give_the_models_own_loss_and_the_same_adapter(
    tiny_model, toy_rows, tmp_path
):
    """``logits: labelled`` (the default) skips the LM head on prompt and padding positions:
    the loss is the model's own (mean over label tokens) and training ends at the same adapter
    as ``logits: all``, up to rounding."""
    from grasp_bench.train.trainer import TrainingSession, _collate, labelled_loss

    session = TrainingSession(_lora(), tiny_model, toy_rows["train"], CFG, tmp_path / "s", seed=0)

    batch = _collate([session.encoded[i] for i in session.batches[0]], session.pad_id)
    assert (batch["labels"] == -100).float().mean() > 0.3  # most positions carry no label
    with torch.no_grad():
        assert labelled_loss(session.model, batch) == pytest.approx(
            session.model(**batch).loss.item(), rel=1e-5
        )
    assert session.labelled_logits
    every = CFG.model_copy(update={"logits": "all"})
    a = train_adapter(
        _lora(), tiny_model, toy_rows["train"], every, tmp_path / "a", 0, progress=False
    )
    b = train_adapter(
        _lora(), tiny_model, toy_rows["train"], CFG, tmp_path / "b", 0, progress=False
    )
    wa, wb = (load_file(str(x / "adapter_model.safetensors")) for x in (a, b))
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-3, atol=1e-5)
    card = json.loads((a / "method_card.json").read_text())
    assert card["train"]["logits"] == "all"
    assert "logits" not in CFG.model_dump()  # the default leaves every earlier hash as it was


def test_part_of_an_experiment_now_and_the_rest_later_trains_each_method_once(tiny_model, tmp_path):
    """``run --methods`` trains the named methods and what they need; the full run afterwards
    keeps their adapters and trains only the rest, into the same folder."""
    from grasp_bench.core.config import load_experiment
    from grasp_bench.core.yaml_loader import ConfigError
    from grasp_bench.run.pipeline import run_experiment

    exp_path = tmp_path / "exp.yaml"
    exp_path.write_text(
        f"""\
name: part
task: toy
model: {tiny_model}
methods:
  - base
  - lora
  - grasp
  - {{name: lora-r4, recipe: {REPO}/baselines/lora.yaml, overrides: {{rank: 4}}}}
output_dir: {tmp_path / "runs"}
data: {{n_train: 16, n_eval_task: 4, n_eval_drift: 4}}
train: {{steps: 2, batch_size: 4, warmup_steps: 1}}
generation: {{max_tokens: 4, backend: hf}}
"""
    )
    exp = load_experiment(exp_path)
    with pytest.raises(ConfigError, match=r"no method 'lora-slow'.*its methods: base, lora, grasp"):
        run_experiment(exp, progress=False, methods=["lora-slow"])

    part = run_experiment(exp, progress=False, methods=["grasp"])  # grasp needs lora's adapter
    train = tmp_path / "runs" / "part" / "train"
    assert {t.recipe.label for t in part.targets} == {"lora", "grasp"}
    assert sorted(p.name for p in train.iterdir() if p.is_dir()) == ["grasp-s0", "lora-s0"]
    adapters = {p: p.stat().st_mtime_ns for p in train.rglob("adapter_model.safetensors")}

    full = run_experiment(exp, progress=False)
    assert {t.recipe.label for t in full.targets} == {"base", "lora", "grasp", "lora-r4"}
    assert {p: p.stat().st_mtime_ns for p in adapters} == adapters  # not trained again
    assert (train / "lora-r4-s0" / "adapter" / "adapter_model.safetensors").exists()
    assert set(full.table["method"]) >= {"base", "lora", "grasp", "lora-r4"}
