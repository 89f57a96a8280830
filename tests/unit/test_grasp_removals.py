"""The removals issue #26 asks for, each against its invariant on a tiny random Llama, and each
shown to fail with the removal switched off: ``preserve`` (the stream along V held at the base
model's), ``scope: shared`` (one V at every layer) and ``readers_see_norm`` (readers blind to
g * v, v from the stream they read)."""

from __future__ import annotations

import json

import pytest
import torch

from grasp_bench.core.config import TrainConfig
from grasp_bench.model.directions import (
    change_energy,
    change_subspace,
    random_directions,
    save_directions,
)
from grasp_bench.model.distill import distill_batches
from grasp_bench.model.hf import load_base
from grasp_bench.train.methods import load_recipe
from grasp_bench.train.methods.grasp import shared_directions
from grasp_bench.train.trainer import TrainingSession, train_adapter

from ..conftest import REPO
from .distill_rows import write_distill_rows


def _grasp(**overrides):
    return load_recipe(REPO / "baselines" / "grasp.yaml", overrides=overrides).method


def _lora():
    return load_recipe(REPO / "baselines" / "lora.yaml").method


def _trained_model(tiny_model, adapter):
    from peft import PeftModel

    return PeftModel.from_pretrained(load_base(tiny_model)[0], str(adapter))


def test_preserve_holds_the_stream_along_v_at_the_base_models(tiny_model, tmp_path, monkeypatch):
    """V is where plain LoRA moved the stream most (its change subspace on the training inputs);
    trained with the same steps and data under ``preserve``, the student moves along V far less
    than plain LoRA, while the change outside V is not held."""
    model, tok = load_base(tiny_model)
    train, _ = write_distill_rows(model.eval(), tok, tmp_path, monkeypatch)
    cfg = TrainConfig(steps=20, batch_size=4, lr=5e-3, warmup_steps=0, threads=1)
    lora = train_adapter(_lora(), tiny_model, train, cfg, tmp_path / "lora", seed=0, progress=0)
    encoded = TrainingSession(_lora(), tiny_model, train, cfg, tmp_path / "enc", seed=0).encoded

    def switched(adapter):
        tuned = _trained_model(tiny_model, adapter)
        on, off = tuned.enable_adapter_layers, tuned.disable_adapter_layers
        return tuned, lambda tuned_on: on() if tuned_on else off()

    v, _ = change_subspace(*_first(switched(lora), distill_batches(encoded, tok.pad_token_id)), 2)
    save_directions(tmp_path / "v.safetensors", v, {"kind": "test"})
    held = train_adapter(
        _grasp(directions_file=str(tmp_path / "v.safetensors"), k=2, project="preserve"),
        tiny_model, train, cfg, tmp_path / "preserve", seed=0,
        dependencies={"lora": lora}, progress=False,
    )  # fmt: skip

    def moved(adapter, directions) -> float:
        tuned, switch = switched(adapter)
        batches = distill_batches(encoded, tok.pad_token_id)
        return sum(change_energy(tuned, batches, switch, directions).values())

    outside = {layer: torch.linalg.qr(torch.eye(32) - m @ m.T)[0][:, :8] for layer, m in v.items()}
    assert moved(held, v) < 0.05 * moved(lora, v)
    assert moved(held, outside) > 0.3 * moved(lora, outside)
    card = json.loads((held / "method_card.json").read_text())
    assert set(card["before_training"]["preserve_scale"]) == {"0", "1"}
    after = card["after_training"]
    assert after["preserve_penalty_last5"] < after["preserve_penalty_first5"]


def _first(switched, batches):
    """(model, batches, switch) in change_subspace's argument order."""
    tuned, switch = switched
    return tuned, batches, switch


def test_preserve_needs_the_plain_run_and_its_weight_only_with_preserve():
    from grasp_bench.train.methods.grasp import Grasp, GraspConfig

    assert Grasp(GraspConfig(reading="random", project="preserve")).requires() == ["lora"]
    with pytest.raises(ValueError, match="preserve_weight is read by project preserve only"):
        GraspConfig(preserve_weight=2.0)
    # unset fields stay out of the dumped config, so earlier runs' stage hashes hold
    assert "preserve_weight" not in GraspConfig().model_dump()
    assert "readers_see_norm" not in GraspConfig().model_dump()


def _writer_bs(model) -> dict[int, list[torch.Tensor]]:
    from grasp_bench.model.modules import layer_of, role_of

    out: dict[int, list[torch.Tensor]] = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_B") and role_of(name, "llama") == "writer":
            out.setdefault(layer_of(name), []).append(module.lora_B["default"].weight.detach())
    return out


@pytest.mark.parametrize("scope", ["shared", "per_layer"])
def test_shared_scope_projects_one_v_out_of_every_layer(scope, tiny_model, toy_rows, tmp_path):
    """A truth read in layer 1 only: shared keeps every layer's writers off it; per_layer leaves
    layer 0's writers free to write along it (the switched-off case)."""
    v = random_directions(32, [1], k=1, seed=5)
    save_directions(tmp_path / "v.safetensors", v, {"kind": "test"})
    cfg = TrainConfig(steps=3, batch_size=2, lr=5e-2, warmup_steps=0, max_length=64, threads=1)
    method = _grasp(directions_file=str(tmp_path / "v.safetensors"), scope=scope,
                    project="writers")  # fmt: skip
    session = TrainingSession(method, tiny_model, toy_rows["train"], cfg, tmp_path / "o", seed=0)
    session.start()
    for step in range(cfg.steps):
        session.step(step)
    along = {
        layer: max(float((v[1].T @ b).norm() / b.norm()) for b in bs)
        for layer, bs in _writer_bs(session.model).items()
    }
    assert along[1] < 1e-5
    assert (along[0] < 1e-5) == (scope == "shared")
    if scope == "shared":
        assert torch.equal(method._directions[0], method._directions[1])


def test_shared_directions_span_every_layers_directions():
    dirs = {0: torch.eye(6)[:, :1], 3: torch.eye(6)[:, 1:2]}
    shared = shared_directions(dirs, 5, k=2)
    assert sorted(shared) == [0, 1, 2, 3, 4]
    basis = shared[2]
    for v in dirs.values():
        assert float((basis @ (basis.T @ v) - v).norm()) < 1e-6


@pytest.fixture(scope="module")
def norm_model(tmp_path_factory, tiny_model):
    """The tiny model with random RMSNorm gains, so g * v differs from v."""
    model, tok = load_base(tiny_model)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for layer in model.model.layers:
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                norm.weight.copy_(0.2 + 2 * torch.rand(norm.weight.shape, generator=gen))
    out = tmp_path_factory.mktemp("norm_model")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return str(out)


@pytest.mark.parametrize("aware", [True, False])
def test_readers_see_norm_reads_nothing_along_g_times_v(aware, norm_model, toy_rows, tmp_path):
    """Every reader's A annihilates g * v for v of the stream it reads (attention: into its
    layer; MLP: into and out of it); the plain reader projection does not."""
    v = random_directions(32, [0, 1], k=1, seed=9)
    save_directions(tmp_path / "v.safetensors", v, {"kind": "test"})
    cfg = TrainConfig(steps=3, batch_size=2, lr=5e-2, warmup_steps=0, max_length=64, threads=1)
    overrides = {"directions_file": str(tmp_path / "v.safetensors"), "project": "readers"}
    method = _grasp(**overrides, **({"readers_see_norm": True} if aware else {}))
    session = TrainingSession(method, norm_model, toy_rows["train"], cfg, tmp_path / "o", seed=0)
    session.start()
    for step in range(cfg.steps):
        session.step(step)
    from grasp_bench.model.modules import layer_of, role_of

    checked = 0
    worst = 0.0
    for name, module in session.model.named_modules():
        if not hasattr(module, "lora_A") or role_of(name, "llama") != "reader":
            continue
        layer = layer_of(name)
        block = session.model.base_model.model.model.layers[layer]
        attn = ".self_attn." in name
        g = (block.input_layernorm if attn else block.post_attention_layernorm).weight.detach()
        streams = [x for x in ((layer - 1,) if attn else (layer - 1, layer)) if x in v]
        a = module.lora_A["default"].weight.detach()
        for s in streams:
            worst = max(worst, float((a @ (g * v[s][:, 0])).norm() / a.norm()))
            checked += 1
    assert checked == 2 + 3 + 2 * 2  # layer 0: MLP reads stream 0; layer 1: attn 0, MLP 0 and 1
    assert (worst < 1e-5) == aware
