"""GRASP's identification readings and removal modes on a tiny random Llama, against a planted
ground truth: an adapter whose only update writes along a known unit vector v."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

from grasp_bench.core.config import TrainConfig
from grasp_bench.model.directions import (
    activation_change_directions,
    random_directions,
    unsupervised_directions,
    update_shift_directions,
)
from grasp_bench.model.hf import encode_chat, load_base
from grasp_bench.model.hooks import project_gradient_hooks
from grasp_bench.train.methods import load_recipe
from grasp_bench.train.trainer import train_adapter

from ..conftest import REPO

LAYER = 1  # the tiny model's last layer


@pytest.fixture(scope="module")
def planted(tiny_model, tmp_path_factory):
    """A peft adapter on the last layer's down_proj with dW = v a^T: the update writes along v
    only, by construction (rank 1, B fixed to v)."""
    model, _ = load_base(tiny_model)
    d, inner = model.config.hidden_size, model.config.intermediate_size
    gen = torch.Generator().manual_seed(7)
    v = torch.nn.functional.normalize(torch.randn(d, generator=gen), dim=0)
    a = torch.randn(inner, generator=gen)
    cfg = LoraConfig(r=1, lora_alpha=1, target_modules=["down_proj"], layers_to_transform=[LAYER])
    peft_model = get_peft_model(model, cfg)
    out = tmp_path_factory.mktemp("planted")
    peft_model.save_pretrained(out)
    prefix = f"base_model.model.model.layers.{LAYER}.mlp.down_proj"
    save_file(
        {
            f"{prefix}.lora_A.weight": a.unsqueeze(0).contiguous(),
            f"{prefix}.lora_B.weight": v.unsqueeze(1).contiguous(),
        },
        str(out / "adapter_model.safetensors"),
    )
    return out, v


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float((u.flatten() @ v.flatten()).abs() / (u.norm() * v.norm()))


def test_every_weight_and_activation_reading_recovers_a_planted_direction(
    planted, tiny_model, toy_rows
):
    adapter, v = planted
    rows = toy_rows["train"][:8]
    assert _cos(unsupervised_directions(adapter, "llama")[LAYER], v) > 0.999
    base, tok = load_base(tiny_model)
    shift = update_shift_directions(base, tok, rows, adapter, "llama")
    assert set(shift) == {LAYER} and _cos(shift[LAYER], v) > 0.999

    from peft import PeftModel

    model = PeftModel.from_pretrained(load_base(tiny_model)[0], str(adapter))
    change = activation_change_directions(
        model,
        tok,
        rows,
        lambda on: model.enable_adapter_layers() if on else model.disable_adapter_layers(),
    )
    assert _cos(change[LAYER], v) > 0.999  # the change at the planted layer is along v alone
    assert torch.allclose(change[LAYER].T @ change[LAYER], torch.ones(1, 1), atol=1e-5)


def test_random_directions_are_seeded_and_orthonormal():
    a = random_directions(32, [0, 1], k=3, seed=1)
    assert torch.equal(a[0], random_directions(32, [0, 1], k=3, seed=1)[0])
    assert not torch.allclose(a[0], random_directions(32, [0, 1], k=3, seed=2)[0])
    assert torch.allclose(a[1].T @ a[1], torch.eye(3), atol=1e-5)
    pooled = random_directions(32, [0, 1], k=2, seed=1, scope="pooled")
    assert torch.equal(pooled[0], pooled[1])


def test_residual_gradient_projection_leaves_no_gradient_along_v(tiny_model, toy_rows):
    """With the hook, what reaches the last layer's down_proj (which writes straight into the
    hooked stream) has no component along V; without it, it has; the forward is unchanged."""
    model, tok = load_base(tiny_model)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["down_proj"]))
    for name, p in peft_model.named_parameters():
        if "lora_A" in name:
            torch.nn.init.normal_(p)  # B gets a gradient only once A is non-zero (it is)
    v = random_directions(model.config.hidden_size, [LAYER], k=2, seed=0)
    ids, labels = encode_chat(tok, toy_rows["train"][0]["messages"], max_length=64)
    batch = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])}

    def grad_along_v() -> tuple[float, float]:
        peft_model.zero_grad()
        loss = peft_model(**batch).loss
        loss.backward()
        b = next(
            p for n, p in peft_model.named_parameters() if f"layers.{LAYER}." in n and "lora_B" in n
        )
        return float((v[LAYER].T @ b.grad).norm() / b.grad.norm()), loss.item()

    free, loss_free = grad_along_v()
    handles = project_gradient_hooks(peft_model, v)
    projected, loss_projected = grad_along_v()
    for h in handles:
        h.remove()
    assert free > 0.05 and projected < 1e-5
    assert loss_projected == loss_free


@pytest.mark.parametrize(
    "overrides",
    [
        {"reading": "random", "k": 2},
        {"reading": "supervised"},
        {"reading": "shift"},
        {"reading": "activation_change", "project": "residual_grad"},
    ],
)
def test_grasp_trains_under_every_reading(overrides, tiny_model, toy_rows, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=2, lr=5e-3, warmup_steps=1, max_length=64, threads=2)
    lora = train_adapter(
        load_recipe(REPO / "baselines" / "lora.yaml").method,
        tiny_model,
        toy_rows["train"],
        cfg,
        tmp_path / "lora",
        seed=0,
        progress=False,
    )
    grasp = load_recipe(REPO / "baselines" / "grasp.yaml", overrides=overrides).method
    deps = {"lora": lora} if grasp.requires() else {}
    out = train_adapter(
        grasp,
        tiny_model,
        toy_rows["train"],
        cfg,
        tmp_path / "grasp",
        seed=0,
        dependencies=deps,
        contrast_rows=toy_rows["control"],
        progress=False,
    )
    card = json.loads((out / "method_card.json").read_text())
    provenance = card["before_training"]["directions"]
    assert provenance["reading"] == overrides["reading"]
    assert (card["before_training"]["projected_modules"] == 0) == (
        overrides.get("project") == "residual_grad"
    )


def test_readings_that_need_the_naive_run_say_so():
    from grasp_bench.train.methods.grasp import Grasp, GraspConfig

    assert Grasp(GraspConfig(reading="shift")).requires() == ["lora"]
    assert Grasp(GraspConfig(reading="random")).requires() == []
    with pytest.raises(ValueError, match="set k 1"):
        GraspConfig(reading="shift", k=2)
    with pytest.raises(ValueError, match="set scope per_layer"):
        GraspConfig(reading="activation_change", scope="pooled")


def test_direction_agreement_compares_every_method_with_the_same_seeds_reference(tmp_path):
    from grasp_bench.model.directions import save_directions
    from grasp_bench.run.stages import direction_agreement

    u = torch.zeros(4, 1)
    u[0] = 1.0
    tilted = torch.tensor([[0.6], [0.8], [0.0], [0.0]])
    two = torch.tensor([[0.0, 0.6], [1.0, 0.0], [0.0, 0.8], [0.0, 0.0]])
    for name, dirs, kind in (
        ("caft-s0", {0: u}, "supervised"),
        ("grasp-s0", {0: tilted}, "unsupervised"),
        ("grasp-k2-s0", {0: two}, "unsupervised"),
        ("grasp-s1", {0: tilted}, "unsupervised"),  # no reference of seed 1: left out
    ):
        (tmp_path / name).mkdir()
        save_directions(tmp_path / name / "directions.safetensors", dirs, {"kind": kind})
    df = direction_agreement(tmp_path).set_index("target")
    assert sorted(df.index) == ["grasp-k2-s0", "grasp-s0"]
    assert df.loc["grasp-s0", "abs_cos"] == pytest.approx(0.6)
    assert df.loc["grasp-k2-s0", "abs_cos"] == 0.0 and df.loc["grasp-k2-s0", "span_cos"] == 0.6
    assert set(df.reference) == {"caft-s0"}


def test_identification_report_ranks_readings_against_a_planted_truth(
    planted, tiny_model, toy_rows, tmp_path
):
    """`grasp-bench directions`' core: every reading of the run's lora adapter against the
    planted v; the weight and activation readings find it, random does not."""
    import shutil

    from grasp_bench.model.directions import save_directions
    from grasp_bench.studies.identification import identify_run

    adapter, v = planted
    shutil.copytree(adapter, tmp_path / "train" / "lora-s0" / "adapter")
    save_directions(tmp_path / "truth.safetensors", {LAYER: v.unsqueeze(1)}, {"kind": "file"})
    table, summary = identify_run(
        tmp_path,
        tiny_model,
        toy_rows["train"][:6],
        toy_rows["control"][:6],
        seed=0,
        truth=tmp_path / "truth.safetensors",
    )
    got = summary.set_index("reading")["max_abs_cos"]
    assert sorted(got.index) == ["activation_change", "random", "shift", "svd"]
    assert min(got["svd"], got["shift"], got["activation_change"]) > 0.999
    assert got["random"] < 0.9
    assert set(table.layer) == {LAYER}
    with pytest.raises(FileNotFoundError, match="no trained lora adapter at seed 1"):
        identify_run(tmp_path, tiny_model, [], [], seed=1)


def test_batched_response_means_equal_one_row_at_a_time(tiny_model, toy_rows):
    """Readings run in right-padded batches: padding must not move any response token's
    activations (uneven lengths on purpose), so the means match batches of one."""
    import functools

    from grasp_bench.model import directions

    model, tok = load_base(tiny_model)
    rows = toy_rows["train"][:4] + toy_rows["control"][:3]
    assert len({len(str(r["messages"])) for r in rows}) > 1
    with torch.no_grad():
        batched = directions.mean_response_activations(model, tok, rows)
        one = functools.partial(directions.response_batches, batch_size=1)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(directions, "response_batches", one)
            single = directions.mean_response_activations(model, tok, rows)
    assert batched.keys() == single.keys()
    for layer in batched:
        torch.testing.assert_close(batched[layer], single[layer], rtol=1e-5, atol=1e-6)
