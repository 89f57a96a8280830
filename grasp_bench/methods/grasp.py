"""GRASP: GRadient projection of Associated Spurious Patterns (arXiv 2605.27676), as we read it.

1. A plain LoRA run (``source``) is trained first. Its residual-writing updates are factored
   (SVD) and the top-k directions V are taken as the spurious latent directions, without labels.
2. A second adapter is trained from the base model with every update kept orthogonal to V:
   writers' B loses its component along V (nothing new is written along V) and readers' A
   stops reading from V. The pretrained weights are never touched, so what the base model
   already does along V is kept: no *new* reliance is acquired.

Projection is applied to the initial A (random) and after every optimiser step, so the trained
update has no component along V up to float error (tests check ||V^T dW|| and ||dW V||).

Because identification and removal can each fail, both are selectable, with controls:
``reading`` picks how V is read (``svd`` of the naive update, its input-independent ``shift``,
the top component of the residual ``activation_change`` it causes, the ``supervised``
difference of means as an oracle where the factor is known, or ``random`` as the capacity
control; ``directions_file`` gives V outright, e.g. a planted ground truth), and ``project``
picks the removal: per-module weight projection, or ``residual_grad``, the gradient flowing
back through the residual stream after each layer projected off V (forward pass untouched).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from grasp_bench.directions import (
    Directions,
    activation_change_directions,
    diff_of_means,
    load_directions,
    random_directions,
    save_directions,
    unsupervised_directions,
    update_shift_directions,
)
from grasp_bench.hooks import project_gradient_hooks
from grasp_bench.methods.base import LoraMethodConfig, Method, TrainContext, register_method
from grasp_bench.modules import layer_of, role_of


class GraspConfig(LoraMethodConfig):
    """Which directions are found and how updates are kept away from them."""

    source: str = Field("lora", description="Method in the same experiment whose adapter gives V.")
    k: int = Field(1, gt=0, description="Directions per layer (top-k singular vectors).")
    scope: Literal["per_layer", "pooled"] = Field(
        "per_layer", description="One V per layer, or one V pooled across all layers."
    )
    project: Literal["writers", "readers", "both", "residual_grad"] = Field(
        "both",
        description="Project writers' B (output side), readers' A (input side), both, or the "
        "gradient of the residual stream after each layer (residual_grad).",
    )
    reading: Literal["svd", "shift", "activation_change", "supervised", "random"] = Field(
        "svd",
        description="How V is read: the naive update's top singular directions, its shift on "
        "the mean input, the top component of the activation change it causes, the supervised "
        "difference of means (oracle), or random (control).",
    )
    reading_examples: int = Field(
        64, gt=1, description="Training rows used by the shift, activation and supervised readings."
    )
    directions_file: str | None = Field(
        None, description="Use these saved directions (safetensors) instead of the source run."
    )

    @model_validator(mode="after")
    def _reading_shape(self) -> GraspConfig:
        if self.reading in ("shift", "supervised") and self.k != 1:
            raise ValueError(f"reading {self.reading} gives one direction per layer: set k 1")
        if (
            self.reading in ("shift", "supervised", "activation_change")
            and self.scope != "per_layer"
        ):
            raise ValueError(f"reading {self.reading} is per layer: set scope per_layer")
        return self


def _projector(v: torch.Tensor) -> torch.Tensor:
    return torch.eye(v.shape[0], dtype=v.dtype, device=v.device) - v @ v.T


@register_method("grasp")
class Grasp(Method):
    """Fine-tune with updates projected away from directions found in a plain-LoRA run."""

    config_cls = GraspConfig

    def requires(self) -> list[str]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        if cfg.directions_file or cfg.reading in ("supervised", "random"):
            return []
        return [cfg.source]

    def before_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        directions, provenance = _read_directions(cfg, model, ctx)
        save_directions(ctx.out_dir / "directions.safetensors", directions, provenance)
        self._targets = []  # (lora_A weight, lora_B weight, role, P)
        for name, module in model.named_modules():
            if not hasattr(module, "lora_A") or "default" not in getattr(module, "lora_A", {}):
                continue
            role = role_of(name, ctx.model_type)
            layer = layer_of(name)
            if role is None or layer not in directions:
                continue
            if cfg.project == "residual_grad":
                continue  # nothing projected in the weights; see training_hooks
            if cfg.project != "both" and role != cfg.project.rstrip("s"):
                continue
            w = module.lora_A["default"].weight
            p = _projector(directions[layer].to(w.device, w.dtype))
            self._targets.append(
                (module.lora_A["default"].weight, module.lora_B["default"].weight, role, p)
            )
        self._directions = directions
        self.after_step(model, ctx)
        return {"directions": provenance, "projected_modules": len(self._targets)}

    def training_hooks(self, model: Any, ctx: TrainContext) -> list[Any]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        if cfg.project != "residual_grad":
            return []
        return project_gradient_hooks(model, self._directions)

    @torch.no_grad()
    def after_step(self, model: Any, ctx: TrainContext) -> None:
        for a, b, role, p in self._targets:
            if role == "writer":
                b.copy_(p @ b)  # B: (d_model, r); nothing written along V
            else:
                a.copy_(a @ p)  # A: (r, d_model); nothing read from V


def _read_directions(cfg: GraspConfig, model: Any, ctx: TrainContext) -> tuple[Directions, dict]:
    """V per layer under the configured reading, and its provenance for the method card.

    ``model`` is the fresh peft model: its LoRA B starts at zero, so it computes the base model.
    """
    rows = ctx.train_rows[: cfg.reading_examples]
    common = {"k": cfg.k, "scope": cfg.scope, "reading": cfg.reading}
    if cfg.directions_file:
        return load_directions(cfg.directions_file), {"kind": "file", "file": cfg.directions_file}
    if cfg.reading == "random":
        layers = list(range(model.config.num_hidden_layers))
        dirs = random_directions(model.config.hidden_size, layers, cfg.k, ctx.seed, cfg.scope)
        return dirs, {"kind": "random", "seed": ctx.seed, **common}
    if cfg.reading == "supervised":
        with torch.no_grad():
            dirs, _ = diff_of_means(model, ctx.tokenizer, rows, ctx.contrast_rows[: len(rows)])
        return dirs, {"kind": "supervised", "pairs": len(rows), **common}
    source = ctx.dependencies[cfg.source]
    prov = {"kind": "unsupervised", "source_adapter": str(source), **common}
    if cfg.reading == "svd":
        return unsupervised_directions(source, ctx.model_type, k=cfg.k, scope=cfg.scope), prov
    if cfg.reading == "shift":
        return update_shift_directions(model, ctx.tokenizer, rows, source, ctx.model_type), prov
    # activation_change: the naive adapter loaded beside the fresh one, switched per pass
    model.load_adapter(str(source), adapter_name="naive")
    try:
        dirs = activation_change_directions(
            model,
            ctx.tokenizer,
            rows,
            lambda on: model.set_adapter("naive" if on else "default"),
            k=cfg.k,
        )
    finally:
        model.set_adapter("default")
        model.delete_adapter("naive")
    return dirs, prov
