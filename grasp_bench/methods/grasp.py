"""GRASP: GRadient projection of Associated Spurious Patterns (arXiv 2605.27676), as we read it.

1. A plain LoRA run (``source``) is trained first. Its residual-writing updates are factored
   (SVD) and the top-k directions V are taken as the spurious latent directions, without labels.
2. A second adapter is trained from the base model with every update kept orthogonal to V:
   writers' B loses its component along V (nothing new is written along V) and readers' A
   stops reading from V. The pretrained weights are never touched, so what the base model
   already does along V is kept: no *new* reliance is acquired.

Projection is applied to the initial A (random) and after every optimiser step, so the trained
update has no component along V up to float error (tests check ||V^T dW|| and ||dW V||).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from grasp_bench.directions import load_directions, save_directions, unsupervised_directions
from grasp_bench.methods.base import LoraMethodConfig, Method, TrainContext, register_method
from grasp_bench.modules import layer_of, role_of


class GraspConfig(LoraMethodConfig):
    """Which directions are found and how updates are kept away from them."""

    source: str = Field("lora", description="Method in the same experiment whose adapter gives V.")
    k: int = Field(1, gt=0, description="Directions per layer (top-k singular vectors).")
    scope: Literal["per_layer", "pooled"] = Field(
        "per_layer", description="One V per layer, or one V pooled across all layers."
    )
    project: Literal["writers", "readers", "both"] = Field(
        "both", description="Project writers' B (output side), readers' A (input side), or both."
    )
    directions_file: str | None = Field(
        None, description="Use these saved directions (safetensors) instead of the source run."
    )


def _projector(v: torch.Tensor) -> torch.Tensor:
    return torch.eye(v.shape[0], dtype=v.dtype) - v @ v.T


@register_method("grasp")
class Grasp(Method):
    """Fine-tune with updates projected away from directions found in a plain-LoRA run."""

    config_cls = GraspConfig

    def requires(self) -> list[str]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        return [] if cfg.directions_file else [cfg.source]

    def before_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        if cfg.directions_file:
            directions = load_directions(cfg.directions_file)
            provenance = {"file": cfg.directions_file}
        else:
            source = ctx.dependencies[cfg.source]
            directions = unsupervised_directions(source, ctx.model_type, k=cfg.k, scope=cfg.scope)
            provenance = {
                "kind": "unsupervised",
                "source_adapter": str(source),
                "k": cfg.k,
                "scope": cfg.scope,
            }
        save_directions(ctx.out_dir / "directions.safetensors", directions, provenance)
        self._targets = []  # (lora_A weight, lora_B weight, role, P)
        for name, module in model.named_modules():
            if not hasattr(module, "lora_A") or "default" not in getattr(module, "lora_A", {}):
                continue
            role = role_of(name, ctx.model_type)
            layer = layer_of(name)
            if role is None or layer not in directions:
                continue
            if cfg.project != "both" and role != cfg.project.rstrip("s"):
                continue
            p = _projector(directions[layer].to(module.lora_A["default"].weight.dtype))
            self._targets.append(
                (module.lora_A["default"].weight, module.lora_B["default"].weight, role, p)
            )
        self.after_step(model, ctx)
        return {"directions": provenance, "projected_modules": len(self._targets)}

    @torch.no_grad()
    def after_step(self, model: Any, ctx: TrainContext) -> None:
        for a, b, role, p in self._targets:
            if role == "writer":
                b.copy_(p @ b)  # B: (d_model, r); nothing written along V
            else:
                a.copy_(a @ p)  # A: (r, d_model); nothing read from V
