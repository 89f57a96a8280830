"""The trainer's accelerator paths, checked on the CPU: device/dtype resolution, what a flag
turns on, gradient checkpointing, bf16 weights, rsLoRA, QLoRA's errors, and stage hashes that
the new settings leave as they were (bench/gpu_check.py times the same paths on a GPU)."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from grasp_bench.core.config import TrainConfig
from grasp_bench.core.store import stable_hash
from grasp_bench.model.hf import _nf4_config, load_base
from grasp_bench.train.methods import get_method_class, load_recipe, registered_methods
from grasp_bench.train.trainer import (
    TrainPlan,
    move_method_state,
    train_adapter,
    train_plan,
)

from ..conftest import REPO

CFG = TrainConfig(
    steps=2, batch_size=4, lr=5e-3, warmup_steps=1, checkpoint_every=100, max_length=64, threads=2
)

# Stage-hash inputs as they were before device/dtype/checkpointing/4-bit/rsLoRA existed
# (computed on that code): runs made then must not retrain.
OLD_TRAIN = {
    "steps": 60,
    "batch_size": 8,
    "lr": 0.0005,
    "weight_decay": 0.0,
    "warmup_steps": 5,
    "max_length": 256,
    "checkpoint_every": 20,
    "threads": None,
}
OLD_TRAIN_HASH = "acf7bbe7ebf6739e"
OLD_METHOD_HASHES = {
    "ablate_inference": "4a692e030c242c95",
    "base": "44136fa355b3678a",
    "caft": "8d4eb1f7d832d3c6",
    "grasp": "b836fa6bce28a964",
    "lora": "7ab1bca9bd281e3d",
    "lora_control": "7ab1bca9bd281e3d",
    "steer_inference": "c1a04c9d590b21dd",
    "steer_preventative": "ef1d3565c0cd712a",
}


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A machine that says it has a bf16-capable GPU (only resolution is exercised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


# -- resolution -------------------------------------------------------------------------------


def test_auto_resolves_to_the_old_cpu_float32_path(no_gpu):
    plan = train_plan(TrainConfig())
    assert plan == TrainPlan("cpu", "float32", gradient_checkpointing=False, load_in_4bit=False)


def test_cuda_asked_for_without_a_gpu_is_a_clear_error(no_gpu):
    with pytest.raises(RuntimeError, match="device cuda was asked for, but torch sees no CUDA"):
        train_plan(TrainConfig(device="cuda"))


def test_flags_resolve_to_the_gpu_plan(fake_gpu):
    plan = train_plan(TrainConfig(gradient_checkpointing=True))
    assert plan == TrainPlan("cuda", "bfloat16", gradient_checkpointing=True, load_in_4bit=False)
    assert train_plan(TrainConfig(dtype="float32")).dtype == "float32"
    assert train_plan(TrainConfig(device="cpu")) == TrainPlan("cpu", "float32", False, False)


def test_a_gpu_without_bf16_trains_in_float32(fake_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert train_plan(TrainConfig()).dtype == "float32"


# -- hashes -----------------------------------------------------------------------------------


def test_default_train_stage_inputs_hash_as_before(no_gpu):
    assert TrainConfig().model_dump() == OLD_TRAIN
    assert stable_hash(TrainConfig().model_dump()) == OLD_TRAIN_HASH
    explicit_defaults = TrainConfig(device="auto", dtype="auto", gradient_checkpointing=False)
    assert explicit_defaults.model_dump() == OLD_TRAIN


def test_default_recipe_configs_hash_as_before():
    assert set(OLD_METHOD_HASHES) <= set(registered_methods())
    for name in OLD_METHOD_HASHES:  # methods added since have no "before"
        config = get_method_class(name).config_cls().model_dump(mode="json")
        assert stable_hash(config) == OLD_METHOD_HASHES[name], name
    assert "use_rslora" not in load_recipe(REPO / "baselines" / "lora.yaml").config


def test_settings_that_are_set_are_recorded_and_hashed(fake_gpu):
    cfg = TrainConfig(device="cuda", dtype="bfloat16", gradient_checkpointing=True)
    dumped = cfg.model_dump()
    assert dumped == {
        **OLD_TRAIN,
        "device": "cuda",
        "dtype": "bfloat16",
        "gradient_checkpointing": True,
    }
    assert TrainConfig.model_validate(dumped) == cfg  # snapshots read back the same
    # the stage hash is what the user asked for: auto stays auto whatever it resolves to here,
    # so a run trained on a GPU is still done when it is read on a CPU
    assert TrainConfig().model_dump() == OLD_TRAIN
    assert train_plan(TrainConfig()).dtype == "bfloat16"
    rs = load_recipe(REPO / "baselines" / "lora.yaml", overrides={"use_rslora": True})
    assert rs.config["use_rslora"] is True


# -- training paths on the tiny model ------------------------------------------------------------


def _train(method, tiny_model, rows, out, cfg=CFG):
    return train_adapter(
        method,
        tiny_model,
        rows["train"],
        cfg,
        out,
        seed=0,
        contrast_rows=rows["control"],
        progress=False,
    )


@pytest.mark.parametrize(
    "recipe, overrides",
    [
        ("lora", {}),
        ("grasp", {"reading": "random", "project": "residual_grad"}),  # gradient hooks
        # forward hooks that replace the output, with directions read on the CPU
        ("caft", {"contrast_examples": 4}),
    ],
)
def test_gradient_checkpointing_trains_the_same_adapter(
    recipe, overrides, tiny_model, toy_rows, tmp_path, no_gpu
):
    def method():
        return load_recipe(REPO / "baselines" / f"{recipe}.yaml", overrides=overrides).method

    plain = _train(method(), tiny_model, toy_rows, tmp_path / "plain")
    ckpt_cfg = CFG.model_copy(update={"gradient_checkpointing": True})
    checkpointed = _train(method(), tiny_model, toy_rows, tmp_path / "ckpt", ckpt_cfg)
    card = json.loads((checkpointed / "method_card.json").read_text())
    assert card["hardware"]["gradient_checkpointing"] is True
    assert card["train"]["gradient_checkpointing"] is True
    a = load_file(plain / "adapter_model.safetensors")
    b = load_file(checkpointed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in a.items() if "lora_B" in k)


def test_bfloat16_base_trains_float32_lora_weights(tiny_model, toy_rows, tmp_path, no_gpu):
    try:
        torch.ones(2, 2, dtype=torch.bfloat16) @ torch.ones(2, 2, dtype=torch.bfloat16)
    except RuntimeError:
        pytest.skip("this CPU's torch build has no bf16 matmul")
    cfg = CFG.model_copy(update={"dtype": "bfloat16"})
    lora = load_recipe(REPO / "baselines" / "lora.yaml").method
    out = _train(lora, tiny_model, toy_rows, tmp_path / "bf16", cfg)
    card = json.loads((out / "method_card.json").read_text())
    assert card["hardware"] == {
        "device": "cpu",
        "dtype": "bfloat16",
        "gradient_checkpointing": False,
        "load_in_4bit": False,
    }
    assert all(torch.isfinite(torch.tensor(card["final_losses"])))
    tensors = load_file(out / "adapter_model.safetensors")
    assert tensors and all(t.dtype == torch.float32 for t in tensors.values())


def test_use_rslora_reaches_peft(tiny_model):
    from peft import get_peft_model

    plain = load_recipe(REPO / "baselines" / "lora.yaml").method
    rs = load_recipe(REPO / "baselines" / "lora.yaml", overrides={"use_rslora": True}).method
    assert plain.lora_config("llama").use_rslora is False
    peft_cfg = rs.lora_config("llama")
    assert peft_cfg.use_rslora is True
    model = get_peft_model(load_base(tiny_model)[0], peft_cfg)
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q.scaling["default"] == pytest.approx(16.0 / 8**0.5)  # alpha / sqrt(r)


# -- QLoRA's errors ---------------------------------------------------------------------------


def test_load_in_4bit_without_a_gpu_fails_clearly(tiny_model, toy_rows, tmp_path, no_gpu):
    with pytest.raises(ValidationError, match="load_in_4bit needs a CUDA GPU"):
        TrainConfig(load_in_4bit=True, device="cpu")
    cfg = CFG.model_copy(update={"load_in_4bit": True})
    lora = load_recipe(REPO / "baselines" / "lora.yaml").method
    with pytest.raises(RuntimeError, match=r"load_in_4bit needs a CUDA GPU.*device 'cpu'"):
        _train(lora, tiny_model, toy_rows, tmp_path / "q", cfg)
    assert not (tmp_path / "q" / "adapter").exists()
    with pytest.raises(RuntimeError, match="load_in_4bit needs a CUDA GPU"):
        _nf4_config(torch.bfloat16, "cpu")


def test_load_in_4bit_without_bitsandbytes_fails_clearly(fake_gpu, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    with pytest.raises(ImportError, match=r"needs bitsandbytes.*\[qlora\]"):
        _nf4_config(torch.bfloat16, "cuda")


# -- the device contract for methods ------------------------------------------------------------


def test_method_state_follows_the_model_and_parameters_keep_identity():
    """What a method builds in before_training (projectors, directions, vectors) moves to the
    model's device; the model's own parameters it holds stay the same objects."""
    weight = torch.nn.Parameter(torch.ones(3, 2))

    class Holder:
        pass

    method = Holder()
    method._targets = [(weight, "writer", torch.eye(3))]
    method._directions = {0: torch.ones(3, 1)}
    method.rank = 4
    move_method_state(method, "meta")  # a device every machine has
    a, role, p = method._targets[0]
    assert a is weight and a.device.type == "cpu" and role == "writer"
    assert p.device.type == "meta" and method._directions[0].device.type == "meta"
    assert method.rank == 4
    untouched = method._targets
    move_method_state(method, "meta")
    assert method._targets is untouched  # nothing to move: nothing replaced
