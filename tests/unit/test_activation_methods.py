"""Activation baselines on the tiny random Llama: hooks act exactly where configured, the
ablation folds into an adapter that matches hooks, and every method trains or derives."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel

from grasp_bench.core.config import TrainConfig
from grasp_bench.model.directions import load_directions
from grasp_bench.model.hf import load_base
from grasp_bench.model.hooks import ResidualCapture, add_vector_hooks, decoder_layers, remove
from grasp_bench.train.methods import load_recipe
from grasp_bench.train.trainer import train_adapter

from ..conftest import REPO

CFG = TrainConfig(steps=4, batch_size=4, lr=5e-3, warmup_steps=1, max_length=64, threads=2)


def _recipe(name, **overrides):
    return load_recipe(REPO / "baselines" / f"{name}.yaml", overrides=overrides).method


@pytest.fixture(scope="module")
def lora_adapter(tiny_model, toy_rows, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    return train_adapter(
        _recipe("lora"), tiny_model, toy_rows["train"], CFG, out, seed=0, progress=False
    )


def _residuals(model, ids):
    with ResidualCapture(model) as cap:
        model(input_ids=ids)
    return {k: v.clone() for k, v in cap.outputs.items()}


def test_steering_hook_shifts_the_stream_exactly_at_the_configured_layer(tiny_model):
    model, _ = load_base(tiny_model)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    plain = _residuals(model, ids)
    v = torch.randn(model.config.hidden_size)
    handles = add_vector_hooks(model, {0: 0.5 * v})
    steered = _residuals(model, ids)
    remove(handles)
    torch.testing.assert_close(steered[0] - plain[0], (0.5 * v).expand_as(plain[0]))
    assert not torch.allclose(steered[1], plain[1])  # later layers see the shifted stream
    torch.testing.assert_close(_residuals(model, ids)[0], plain[0])  # removed cleanly


def _writer_ablation_hooks(model, dirs):
    handles = []
    for name, module in model.named_modules():
        if (
            name.endswith(("o_proj", "down_proj"))
            and ".layers." in name
            and hasattr(module, "lora_A") is not False
        ):
            layer = int(name.split(".layers.")[1].split(".")[0])
            v = dirs[layer]

            def hook(_m, _i, out, v=v):
                return out - (out @ v) @ v.T

            handles.append(module.register_forward_hook(hook))
    return handles


def test_ablation_folded_into_the_adapter_matches_hooks(
    tiny_model, toy_rows, lora_adapter, tmp_path
):
    method = _recipe("ablate_inference", contrast_examples=8)
    out = train_adapter(
        method,
        tiny_model,
        toy_rows["train"],
        CFG,
        tmp_path / "abl",
        seed=0,
        dependencies={"lora": lora_adapter},
        contrast_rows=toy_rows["control"],
        progress=False,
    )
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 9
    dirs = load_directions(tmp_path / "abl" / "directions.safetensors")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    folded = PeftModel.from_pretrained(load_base(tiny_model)[0], out).eval()
    hooked = PeftModel.from_pretrained(load_base(tiny_model)[0], lora_adapter).eval()
    plain_logits = hooked(input_ids=ids).logits
    handles = _writer_ablation_hooks(hooked, dirs)
    assert len(handles) == 4  # 2 layers x (o_proj, down_proj)
    with torch.no_grad():
        expected = hooked(input_ids=ids).logits
        got = folded(input_ids=ids).logits
    remove(handles)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(plain_logits, expected, atol=1e-4)


@pytest.mark.parametrize("name", ["caft", "steer_preventative"])
def test_training_time_interventions_train_and_leave_no_hooks(name, tiny_model, toy_rows, tmp_path):
    method = _recipe(name, contrast_examples=8)
    out = train_adapter(
        method,
        tiny_model,
        toy_rows["train"],
        CFG,
        tmp_path / name,
        seed=0,
        contrast_rows=toy_rows["control"],
        progress=False,
    )
    card = json.loads((out / "method_card.json").read_text())
    assert card["before_training"]["directions"]["kind"] == "supervised"
    expected_layers = [0, 1] if name == "caft" else [1]
    assert card["before_training"]["layers"] == expected_layers
    model = PeftModel.from_pretrained(load_base(tiny_model)[0], out)
    assert all(not layer._forward_hooks for layer in decoder_layers(model))


def test_steer_inference_generates_through_hf_with_its_hooks(
    tiny_model, toy_rows, lora_adapter, tmp_path
):
    from grasp_bench.core.config import GenerationConfig
    from grasp_bench.evaluate.generation import generate_hf

    method = _recipe("steer_inference", contrast_examples=8, coefficient=4.0)
    out = train_adapter(
        method,
        tiny_model,
        toy_rows["train"],
        CFG,
        tmp_path / "st",
        seed=0,
        dependencies={"lora": lora_adapter},
        contrast_rows=toy_rows["control"],
        progress=False,
    )
    prompts = [
        {
            "prompt_id": "p0",
            "split": "drift",
            "messages": [{"role": "user", "content": "How do I make tea?"}],
        }
    ]
    cfg = GenerationConfig(max_tokens=8)
    steered = generate_hf(
        tiny_model, "st", str(out), prompts, cfg, 0, tmp_path / "g", method=method
    )
    rows = [json.loads(x) for x in steered.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["prompt_id"] == "p0"
    assert rows[0]["sampling"]["backend"] == "hf" and rows[0]["adapter"] == str(out)
    # the hooks it generates with shift the middle layer by -a * ||diff|| * v
    model = PeftModel.from_pretrained(load_base(tiny_model)[0], out).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    plain = _residuals(model, ids)
    handles = method.inference_hooks(model, out)
    steered_h = _residuals(model, ids)
    remove(handles)
    shift = (steered_h[1] - plain[1])[0, 0]
    dirs = load_directions(tmp_path / "st" / "directions.safetensors")
    assert shift.norm() > 0 and torch.allclose(steered_h[0], plain[0])
    assert torch.nn.functional.cosine_similarity(shift, dirs[1][:, 0], dim=0) < -0.999


def test_unsupervised_direction_source_is_a_dependency():
    assert _recipe("caft", direction="unsupervised").requires() == ["lora"]
    assert _recipe("caft").requires() == []
    assert _recipe("ablate_inference").requires() == ["lora"]


def test_file_directions_give_the_oracle_arm_its_layers_and_k(tiny_model, toy_rows, tmp_path):
    """``direction: file`` (a task's saved truth) acts at the layers the file holds, with the
    first k columns; CAFT's hooks then leave nothing of V in the stream at those layers."""
    from grasp_bench.model.directions import save_directions
    from grasp_bench.train.methods.base import TrainContext

    model, _ = load_base(tiny_model)
    d = model.config.hidden_size
    v = torch.linalg.qr(torch.randn(d, 3, generator=torch.Generator().manual_seed(0)))[0]
    path = tmp_path / "truth.safetensors"
    save_directions(path, {1: v}, {"kind": "test"})
    method = _recipe("caft", direction="file", directions_file=str(path), k=2)
    out = train_adapter(
        method, tiny_model, toy_rows["train"], CFG, tmp_path / "caft", seed=0, progress=False
    )
    card = json.loads((out / "method_card.json").read_text())["before_training"]
    assert card["layers"] == [1]
    assert card["directions"] == {"kind": "file", "file": str(path), "k": 2}
    ctx = TrainContext(base_model=tiny_model, model_type="llama", seed=0, out_dir=tmp_path / "c")
    ctx.out_dir.mkdir()
    method.before_training(model, ctx)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    handles = method.training_hooks(model, ctx)
    projected = _residuals(model, ids)
    remove(handles)
    assert float((projected[1] @ v[:, :2]).abs().max()) < 1e-4
    assert float((projected[1] @ v[:, 2:]).abs().max()) > 1e-3  # the third column is kept
    assert float((_residuals(model, ids)[1] @ v[:, :2]).abs().max()) > 1e-3  # off: V is there
    with pytest.raises(ValueError, match="no direction for layers"):
        _recipe("steer_preventative", direction="file", directions_file=str(path), layers=[0])\
            .before_training(model, ctx)  # fmt: skip
    with pytest.raises(ValueError, match="directions_file"):
        _recipe("caft", direction="file")
    with pytest.raises(ValueError, match="k applies"):
        _recipe("caft", k=2)


def test_preventative_steering_at_contrast_scale_adds_the_datas_own_component(
    tiny_model, toy_rows, tmp_path
):
    """``scale: contrast`` steers a unit direction v by (d . v) v, d the training-minus-control
    mean difference of the stream: the sign and size the data give it; ``unit`` adds v."""
    from grasp_bench.model.directions import diff_of_means, save_directions
    from grasp_bench.train.methods.base import TrainContext

    model, tokenizer = load_base(tiny_model)
    d = model.config.hidden_size
    v = torch.nn.functional.normalize(
        torch.randn(d, 1, generator=torch.Generator().manual_seed(1)), dim=0
    )
    path = tmp_path / "truth.safetensors"
    save_directions(path, {1: v}, {"kind": "test"})
    ctx = TrainContext(
        base_model=tiny_model, model_type="llama", seed=0, out_dir=tmp_path / "c",
        train_rows=toy_rows["train"], contrast_rows=toy_rows["control"], tokenizer=tokenizer,
    )  # fmt: skip
    ctx.out_dir.mkdir()
    units, norms = diff_of_means(model, tokenizer, toy_rows["train"], toy_rows["control"])
    expected = float(norms[1] * units[1][:, 0] @ v[:, 0]) * v[:, 0]

    def vector(scale):
        method = _recipe(
            "steer_preventative", direction="file", directions_file=str(path), layers=[1],
            scale=scale,
        )  # fmt: skip
        card = method.before_training(model, ctx)
        return method._vectors[1], card

    contrast, card = vector("contrast")
    torch.testing.assert_close(contrast, expected, rtol=1e-4, atol=1e-6)
    assert card["scale"]["1"] == pytest.approx(float(norms[1] * units[1][:, 0] @ v[:, 0]))
    unit, _ = vector("unit")
    torch.testing.assert_close(unit, v[:, 0])
    assert not torch.allclose(unit, expected, atol=1e-4)  # the scale is the data's, not 1
    ctx.contrast_rows = []
    with pytest.raises(ValueError, match="control rows"):
        vector("contrast")
