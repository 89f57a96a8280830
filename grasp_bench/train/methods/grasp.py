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
picks the removal: per-module weight projection, ``residual_grad`` (the gradient flowing back
through the residual stream after each layer projected off V, forward pass untouched), or
``preserve`` (the reading "no new reliance, pretrained content kept" taken literally: a penalty
holding the student's residual stream along V at the base model's value on the training
inputs). Weight projection only stops the adapter's own reads and writes along V; the frozen
layers after it can still turn changes elsewhere into changes along V, which ``preserve``
penalises where they land. Its scale is the plain-LoRA run's own change along V (the same
yardstick for every source of V, oracle, reading or random): a weight of 1 makes moving along V
as far as plain LoRA did cost 1 nat of loss.

``scope: shared`` applies one V (the top-k span of the per-layer directions) at every layer, so
a truth read in one layer covers all of them; ``readers_see_norm`` projects each reader's A off
g * v (g the RMSNorm weight before it) with v from the stream it actually reads: the stream into
the layer for attention, into and out of it for the MLP.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from grasp_bench.core.rundir import DIRECTIONS
from grasp_bench.model.directions import (
    Directions,
    activation_change_directions,
    change_energy,
    diff_of_means,
    load_directions,
    random_directions,
    save_directions,
    unsupervised_directions,
    update_shift_directions,
)
from grasp_bench.model.hooks import decoder_layers, project_gradient_hooks
from grasp_bench.model.modules import layer_of, role_of
from grasp_bench.train.methods.base import LoraMethodConfig, Method, TrainContext, register_method


class GraspConfig(LoraMethodConfig):
    """Which directions are found and how updates are kept away from them."""

    source: str = Field("lora", description="Method in the same experiment whose adapter gives V.")
    k: int = Field(1, gt=0, description="Directions per layer (top-k singular vectors).")
    scope: Literal["per_layer", "pooled", "shared"] = Field(
        "per_layer",
        description="One V per layer, one V pooled across all layers' updates (svd), or one V "
        "shared by every layer: the top-k span of the per-layer directions of any reading.",
    )
    project: Literal["writers", "readers", "both", "residual_grad", "preserve"] = Field(
        "both",
        description="Project writers' B (output side), readers' A (input side), both, the "
        "gradient of the residual stream after each layer (residual_grad), or penalise the "
        "stream's departure from the base model's along V (preserve).",
    )
    reading: Literal["svd", "shift", "activation_change", "supervised", "random"] = Field(
        "svd",
        description="How V is read: the naive update's top singular directions, its shift on "
        "the mean input, the top components of the activation change it causes (the naive run's "
        "change subspace), the supervised difference of means (oracle), or random (control).",
    )
    reading_examples: int = Field(
        64, gt=1, description="Training rows used by the shift, activation and supervised readings."
    )
    directions_file: str | None = Field(
        None,
        description="Use these saved directions (safetensors; the first k columns per layer) "
        "instead of the source run.",
    )
    preserve_weight: float | None = Field(
        None,
        gt=0,
        exclude_if=lambda v: v is None,
        description="project preserve: the penalty's weight (default 1; see the module note).",
    )
    readers_see_norm: bool = Field(
        False,
        exclude_if=lambda v: v is False,
        description="Readers' A projected off g * v (g: the RMSNorm weight before the reader), "
        "v from the stream the reader reads.",
    )

    @model_validator(mode="after")
    def _reading_shape(self) -> GraspConfig:
        if self.reading in ("shift", "supervised") and self.k != 1:
            raise ValueError(f"reading {self.reading} gives one direction per layer: set k 1")
        if self.reading in ("shift", "supervised", "activation_change") and self.scope == "pooled":
            raise ValueError(f"reading {self.reading} is per layer: set scope per_layer or shared")
        if self.preserve_weight is not None and self.project != "preserve":
            raise ValueError("preserve_weight is read by project preserve only")
        return self

    @property
    def weight(self) -> float:
        return 1.0 if self.preserve_weight is None else self.preserve_weight


def _projector(v: torch.Tensor) -> torch.Tensor:
    return torch.eye(v.shape[0], dtype=v.dtype, device=v.device) - v @ v.T


@register_method("grasp")
class Grasp(Method):
    """Fine-tune with updates kept away from directions found in a plain-LoRA run."""

    config_cls = GraspConfig

    def requires(self) -> list[str]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        if cfg.project == "preserve":
            return [cfg.source]  # the penalty's scale is the plain run's change along V
        if cfg.directions_file or cfg.reading in ("supervised", "random"):
            return []
        return [cfg.source]

    def before_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        directions, provenance = _read_directions(cfg, model, ctx)
        if cfg.scope == "shared":
            directions = shared_directions(directions, model.config.num_hidden_layers, cfg.k)
            provenance = {**provenance, "scope": "shared"}
        save_directions(ctx.out_dir / DIRECTIONS, directions, provenance)
        self._directions = directions
        self._targets = []  # (lora_A weight, lora_B weight, role, P)
        card: dict[str, Any] = {"directions": provenance}
        if cfg.project == "preserve":
            self._scale = _source_change_energy(model, ctx, cfg, directions)
            self._penalties: list[float] = []
            card["preserve_scale"] = {str(k): v for k, v in self._scale.items()}
            return card
        if cfg.project == "residual_grad":
            return {**card, "projected_modules": 0}  # nothing in the weights; training_hooks
        norms = _reader_norm_weights(model, ctx.model_type) if cfg.readers_see_norm else {}
        for name, module in model.named_modules():
            if not hasattr(module, "lora_A") or "default" not in getattr(module, "lora_A", {}):
                continue
            role = role_of(name, ctx.model_type)
            if role is None or (cfg.project != "both" and role != cfg.project.rstrip("s")):
                continue
            w = module.lora_A["default"].weight
            layer = layer_of(name)
            if role == "reader" and cfg.readers_see_norm:
                v = _read_stream_directions(directions, layer, _block_of(name))
                if v is None:
                    continue
                g = norms[(layer, _block_of(name))].to(v)
                v = torch.linalg.qr(g.unsqueeze(1) * v)[0]
            elif layer in directions:
                v = directions[layer]
            else:
                continue
            p = _projector(v.to(w.device, w.dtype))
            self._targets.append((w, module.lora_B["default"].weight, role, p))
        self.after_step(model, ctx)
        return {**card, "projected_modules": len(self._targets)}

    def training_hooks(self, model: Any, ctx: TrainContext) -> list[Any]:
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        if cfg.project == "residual_grad":
            return project_gradient_hooks(model, self._directions)
        if cfg.project != "preserve":
            return []
        self._along: dict[str, dict[int, torch.Tensor]] = {"student": {}, "base": {}}
        self._pass = "student"
        layers = decoder_layers(model)
        handles = []
        for layer, v in self._directions.items():

            def record(_m, _i, output, layer: int = layer, v: torch.Tensor = v) -> None:
                h = output[0] if isinstance(output, tuple) else output
                self._along[self._pass][layer] = h @ v.to(h)

            handles.append(layers[layer].register_forward_hook(record))
        return handles

    def penalty(self, model: Any, ctx: TrainContext, inputs: dict[str, Any]) -> Any:
        """weight x mean over layers of mean_token ||V^T (h_student - h_base)||^2 / scale."""
        cfg = self.config
        assert isinstance(cfg, GraspConfig)
        if cfg.project != "preserve":
            return None
        from grasp_bench.model.directions import forward_hidden

        ids, attention = inputs["input_ids"], inputs["attention_mask"]
        self._pass = "base"
        try:
            with torch.no_grad(), model.disable_adapter():
                forward_hidden(model, ids, attention)
        finally:
            self._pass = "student"
        counted = attention.bool().clone()
        counted[:, 0] = False  # the attention sink's stream is fixed and huge
        terms = []
        for layer, scale in self._scale.items():
            diff = self._along["student"][layer] - self._along["base"][layer]
            terms.append((diff[counted] ** 2).sum(-1).mean() / scale)
        self._along = {"student": {}, "base": {}}
        total = cfg.weight * torch.stack(terms).mean()
        self._penalties.append(float(total.detach()))
        return total

    @torch.no_grad()
    def after_step(self, model: Any, ctx: TrainContext) -> None:
        for a, b, role, p in self._targets:
            if role == "writer":
                b.copy_(p @ b)  # B: (d_model, r); nothing written along V
            else:
                a.copy_(a @ p)  # A: (r, d_model); nothing read from V

    def after_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        if not getattr(self, "_penalties", None):
            return {}
        first, last = self._penalties[:5], self._penalties[-5:]
        return {"preserve_penalty_first5": sum(first) / len(first),
                "preserve_penalty_last5": sum(last) / len(last)}  # fmt: skip


SCALE_FLOOR = 1e-8  # a V the plain run never moved along still gets a finite weight


def shared_directions(directions: Directions, n_layers: int, k: int) -> Directions:
    """One V for every layer: the top-k left singular vectors of the per-layer directions side
    by side (each layer counts once, whatever the scale of its update)."""
    stacked = torch.cat([v.double() for _, v in sorted(directions.items())], dim=1)
    u = torch.linalg.svd(stacked, full_matrices=False)[0][:, :k].float().contiguous()
    return dict.fromkeys(range(n_layers), u)


def _block_of(module_name: str) -> str:
    for block in ("self_attn", "mlp"):
        if f".{block}." in module_name:
            return block
    raise ValueError(f"readers_see_norm: cannot tell attention from MLP for {module_name!r}")


def _read_stream_directions(directions: Directions, layer: int, block: str) -> Any:
    """V of the stream a reader reads: into the layer (after layer - 1) for attention; into and
    out of it for the MLP, which reads the stream between the two. None: no direction there."""
    chosen = [directions[x] for x in ((layer - 1,) if block == "self_attn" else (layer - 1, layer))
              if x in directions]  # fmt: skip
    if not chosen:
        return None
    return torch.linalg.qr(torch.cat(chosen, dim=1).double())[0].float()


def _reader_norm_weights(model: Any, model_type: str) -> dict[tuple[int, str], torch.Tensor]:
    """(layer, block) -> the effective RMSNorm gain in front of that block's readers."""
    out = {}
    for i, layer in enumerate(decoder_layers(model)):
        pre = getattr(layer, "input_layernorm", None)
        post = getattr(layer, "post_attention_layernorm", None)
        if pre is None or post is None:
            raise ValueError(
                f"readers_see_norm: {model_type} layers have no input_layernorm /"
                " post_attention_layernorm (RMSNorm before attention and MLP)"
            )
        for block, norm in (("self_attn", pre), ("mlp", post)):
            g = norm.weight.detach().float()
            out[(i, block)] = 1 + g if model_type.startswith("gemma") else g
    return out


def _source_change_energy(
    model: Any, ctx: TrainContext, cfg: GraspConfig, directions: Directions
) -> dict[int, float]:
    """Per layer, the plain-LoRA run's mean squared change along V on the training inputs."""
    rows = ctx.train_rows[: cfg.reading_examples]
    model.load_adapter(str(ctx.dependencies[cfg.source]), adapter_name="naive")
    try:
        energy = change_energy(
            model,
            _batches(ctx, model, rows),
            lambda on: model.set_adapter("naive" if on else "default"),
            directions,
        )
    finally:
        model.set_adapter("default")
        model.delete_adapter("naive")
    return {layer: max(e, SCALE_FLOOR) for layer, e in energy.items()}


def _batches(ctx: TrainContext, model: Any, rows: list[dict[str, Any]]) -> Any:
    from grasp_bench.model.directions import response_batches

    return ctx.batches(rows) if ctx.batches else response_batches(model, ctx.tokenizer, rows)


def _read_directions(cfg: GraspConfig, model: Any, ctx: TrainContext) -> tuple[Directions, dict]:
    """V per layer under the configured reading, and its provenance for the method card.

    ``model`` is the fresh peft model: its LoRA B starts at zero, so it computes the base model.
    """
    rows = ctx.train_rows[: cfg.reading_examples]
    common = {"k": cfg.k, "scope": cfg.scope, "reading": cfg.reading}
    if cfg.directions_file:
        loaded = load_directions(cfg.directions_file)
        narrow = {layer: v.shape[1] for layer, v in loaded.items() if v.shape[1] < cfg.k}
        if narrow:
            raise ValueError(
                f"{cfg.directions_file}: k {cfg.k} but layers {sorted(narrow)} hold fewer columns"
            )
        dirs = {layer: v[:, : cfg.k].contiguous() for layer, v in loaded.items()}
        return dirs, {"kind": "file", "file": cfg.directions_file, "k": cfg.k}
    if cfg.reading == "random":
        layers = list(range(model.config.num_hidden_layers))
        scope = "pooled" if cfg.scope == "pooled" else "per_layer"
        dirs = random_directions(model.config.hidden_size, layers, cfg.k, ctx.seed, scope)
        return dirs, {"kind": "random", "seed": ctx.seed, **common}
    if cfg.reading == "supervised":
        with torch.no_grad():
            dirs, _ = diff_of_means(model, ctx.tokenizer, rows, ctx.contrast_rows[: len(rows)])
        return dirs, {"kind": "supervised", "pairs": len(rows), **common}
    source = ctx.dependencies[cfg.source]
    prov = {"kind": "unsupervised", "source_adapter": str(source), **common}
    if cfg.reading == "svd":
        scope = "pooled" if cfg.scope == "pooled" else "per_layer"
        return unsupervised_directions(source, ctx.model_type, k=cfg.k, scope=scope), prov
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
            batches=_batches(ctx, model, rows),
        )
    finally:
        model.set_adapter("default")
        model.delete_adapter("naive")
    return dirs, prov
