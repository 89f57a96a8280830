"""Baselines that act on activations instead of weights (the comparison GRASP is judged by).

| name               | when            | what                                                   |
|--------------------|-----------------|--------------------------------------------------------|
| steer_inference    | inference       | plain LoRA, then h <- h - a v at chosen layers          |
| steer_preventative | training only   | h <- h + a v while training; served plain               |
| caft               | training only   | project v out of activations while training; served plain |
| ablate_inference   | inference       | plain LoRA with v projected out of every residual writer, |
|                    |                 | folded into the adapter so stock vLLM serves it          |

Directions come from one of three sources (config ``direction``): ``supervised`` is the
difference of mean activations between the task's persona answers and its control answers
(computed on the base model); ``unsupervised`` is the top singular direction of a LoRA run's
writers, the one GRASP uses; ``file`` reads saved directions (a task's ground truth, e.g. the
positive control's planted ``direction.safetensors`` or ``change.safetensors``), so an oracle
arm of each baseline can be set beside its label-free arm and the direction source is never
confounded with the method. So a comparison isolates weight projection from activation
intervention.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from safetensors.torch import load_file, save_file

from grasp_bench.core.rundir import DIRECTIONS, METHOD_CARD
from grasp_bench.model.directions import (
    Directions,
    diff_of_means,
    load_directions,
    save_directions,
    unsupervised_directions,
)
from grasp_bench.model.hooks import add_vector_hooks, project_out_hooks
from grasp_bench.model.modules import role_of
from grasp_bench.train.methods.base import (
    LoraMethodConfig,
    Method,
    MethodConfig,
    TrainContext,
    register_method,
)


class DirectionFields(MethodConfig):
    """Where the direction v comes from and at which layers it is used."""

    direction: Literal["supervised", "unsupervised", "file"] = Field(
        "supervised",
        description="Difference of means (persona-vector style), LoRA-weight SVD, or saved "
        "directions (directions_file).",
    )
    directions_file: str | None = Field(
        None,
        exclude_if=lambda v: v is None,  # unset: recipe configs (and stage hashes) as before
        description="For direction file: a safetensors of per-layer unit directions (d x k).",
    )
    k: int | None = Field(
        None,
        gt=0,
        exclude_if=lambda v: v is None,
        description="For direction file: the first k columns per layer (None: all of them).",
    )
    direction_source: str = Field(
        "lora", description="For unsupervised: the method whose adapter gives the direction."
    )
    contrast_examples: int = Field(
        64, gt=1, description="For supervised: persona/control answer pairs averaged."
    )
    layers: list[int] | None = Field(
        None, description="Decoder layers to act at (None: the method's default)."
    )

    @model_validator(mode="after")
    def _file_fields(self) -> DirectionFields:
        if (self.direction == "file") != (self.directions_file is not None):
            raise ValueError("directions_file is given exactly when direction is file")
        if self.k is not None and self.direction != "file":
            raise ValueError("k applies to direction file only")
        return self


def _directions(cfg: DirectionFields, model: Any, ctx: TrainContext) -> tuple[Directions, dict]:
    """Unit directions per layer (d x 1), the supervised difference's norm, and provenance."""
    if cfg.direction == "unsupervised":
        source = ctx.dependencies[cfg.direction_source]
        dirs = unsupervised_directions(source, ctx.model_type, k=1, scope="per_layer")
        norms = dict.fromkeys(dirs, 1.0)
        prov = {"kind": "unsupervised", "source_adapter": str(source)}
    elif cfg.direction == "file":
        loaded = load_directions(Path(cfg.directions_file))
        k = cfg.k or min(v.shape[1] for v in loaded.values())
        short = sorted(layer for layer, v in loaded.items() if v.shape[1] < k)
        if short:
            raise ValueError(f"{cfg.directions_file}: k {k} but layers {short} hold fewer columns")
        dirs = {layer: v[:, :k].float() for layer, v in loaded.items()}
        norms = dict.fromkeys(dirs, 1.0)  # unit directions: a coefficient is absolute
        prov = {"kind": "file", "file": cfg.directions_file, "k": k}
    else:
        dirs, norms = _training_minus_control(cfg, model, ctx)
        prov = {"kind": "supervised", "pairs": min(cfg.contrast_examples, len(ctx.train_rows))}
    return dirs, {"norms": norms, "provenance": prov}


def _training_minus_control(
    cfg: DirectionFields, model: Any, ctx: TrainContext
) -> tuple[Directions, dict[int, float]]:
    """mean(training responses) - mean(control responses) of the stream per layer, as unit
    directions and norms (the persona-vector recipe), over the first contrast_examples rows."""
    n = cfg.contrast_examples
    with torch.no_grad():
        return diff_of_means(model, ctx.tokenizer, ctx.train_rows[:n], ctx.contrast_rows[:n])


def _layers(cfg: DirectionFields, model: Any, default: str, dirs: Directions) -> list[int]:
    """The configured layers, or the default (every layer, or the middle one); a directions file
    may hold fewer layers (none where the truth has no change): "all" means all it holds."""
    n = model.config.num_hidden_layers
    if cfg.layers is not None:
        bad = [layer for layer in cfg.layers if not 0 <= layer < n]
        if bad:
            raise ValueError(f"layers {bad} out of range for a model with {n} layers")
        layers = cfg.layers
    elif default == "all":
        return [layer for layer in range(n) if layer in dirs]
    else:
        layers = [n // 2]
    missing = [layer for layer in layers if layer not in dirs]
    if missing:
        raise ValueError(f"no direction for layers {missing} ({cfg.direction} directions)")
    return layers


def _prepare(
    cfg: DirectionFields, model: Any, ctx: TrainContext, default_layers: str
) -> tuple[Directions, dict, list[int]]:
    """Directions, their info and the layers acted on; saved beside the adapter."""
    dirs, info = _directions(cfg, model, ctx)
    layers = _layers(cfg, model, default_layers, dirs)
    save_directions(ctx.out_dir / DIRECTIONS, dirs, info["provenance"])
    return dirs, info, layers


def _contrast_projections(
    cfg: DirectionFields, model: Any, ctx: TrainContext, dirs: Directions
) -> dict[int, float]:
    """d . v per layer, d = mean(training responses) - mean(control responses) of the stream:
    the size and sign the data itself gives a unit direction (a supervised direction's own
    norm is this same number)."""
    if not ctx.contrast_rows:
        raise ValueError("scale contrast needs the task's control rows; this task has none")
    units, norms = _training_minus_control(cfg, model, ctx)
    return {
        layer: float(norms[layer] * (units[layer][:, 0] @ v[:, 0].to(units[layer].dtype)))
        for layer, v in dirs.items()
    }


def _requires(cfg: DirectionFields, *extra: str) -> list[str]:
    deps = list(extra)
    if cfg.direction == "unsupervised" and cfg.direction_source not in deps:
        deps.append(cfg.direction_source)
    return deps


# -- training-time interventions -------------------------------------------------------------


class SteerPreventativeConfig(LoraMethodConfig, DirectionFields):
    """Preventative steering: add the persona while training so the adapter need not learn it."""

    coefficient: float = Field(
        1.0, description="a: multiples of the supervised difference's norm (unit v: absolute)."
    )
    scale: Literal["unit", "contrast"] = Field(
        "unit",
        exclude_if=lambda v: v == "unit",  # unset: recipe configs (and stage hashes) as before
        description="For a file or unsupervised direction v: unit adds a v; contrast adds "
        "a (d . v) v, with d the training-minus-control mean difference at that layer, so an "
        "oracle or a weight reading steers with the data's own sign and size.",
    )


@register_method("steer_preventative")
class SteerPreventative(Method):
    """During training only, h <- h + a v at the chosen layers (default: the middle layer)."""

    config_cls = SteerPreventativeConfig

    def requires(self) -> list[str]:
        return _requires(self.config)

    def before_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        cfg = self.config
        dirs, info, layers = _prepare(cfg, model, ctx, "middle")
        norms = info["norms"]
        if cfg.scale == "contrast" and cfg.direction != "supervised":
            norms = _contrast_projections(cfg, model, ctx, {lay: dirs[lay] for lay in layers})
        self._vectors = {
            layer: cfg.coefficient * norms[layer] * dirs[layer][:, 0] for layer in layers
        }
        return {
            "directions": info["provenance"],
            "layers": layers,
            "scale": {str(layer): norms[layer] for layer in layers},
        }

    def training_hooks(self, model: Any, ctx: TrainContext) -> list[Any]:
        return add_vector_hooks(model, self._vectors)


class CaftConfig(LoraMethodConfig, DirectionFields):
    """Concept-ablation fine-tuning: v is projected out of activations while training."""


@register_method("caft")
class Caft(Method):
    """During training only, h <- h - v v^T h at the chosen layers (default: all)."""

    config_cls = CaftConfig

    def requires(self) -> list[str]:
        return _requires(self.config)

    def before_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        cfg = self.config
        dirs, info, layers = _prepare(cfg, model, ctx, "all")
        self._dirs = {layer: dirs[layer] for layer in layers}
        return {"directions": info["provenance"], "layers": layers}

    def training_hooks(self, model: Any, ctx: TrainContext) -> list[Any]:
        return project_out_hooks(model, self._dirs)


# -- inference-time interventions on a plain LoRA adapter --------------------------------------


class SteerInferenceConfig(DirectionFields):
    """Inference-time steering of the plain-LoRA model."""

    adapter_source: str = Field("lora", description="The method whose adapter is steered.")
    coefficient: float = Field(
        1.0, description="a: multiples of the supervised difference's norm (unit v: absolute)."
    )


STEERING_FILE = "steering.safetensors"


@register_method("steer_inference")
class SteerInference(Method):
    """Plain LoRA, then h <- h - a v at the chosen layers while generating (HF back end)."""

    config_cls = SteerInferenceConfig
    derives = True
    serving = "hf-hooks"

    def requires(self) -> list[str]:
        return _requires(self.config, self.config.adapter_source)

    def derive(self, model: Any, ctx: TrainContext, out: Path) -> dict[str, Any]:
        cfg = self.config
        dirs, info, layers = _prepare(cfg, model, ctx, "middle")
        for f in Path(ctx.dependencies[cfg.adapter_source]).iterdir():
            if f.name != METHOD_CARD:
                shutil.copy2(f, out / f.name)
        vectors = {
            f"layer.{layer}": (
                -cfg.coefficient * info["norms"][layer] * dirs[layer][:, 0]
            ).contiguous()
            for layer in layers
        }
        save_file(vectors, str(out / STEERING_FILE))
        return {"directions": info["provenance"], "layers": layers}

    def inference_hooks(self, model: Any, adapter_dir: Path) -> list[Any]:
        vectors = load_file(str(Path(adapter_dir) / STEERING_FILE))
        return add_vector_hooks(model, {int(k.split(".")[1]): v for k, v in vectors.items()})


class AblateInferenceConfig(DirectionFields):
    """Inference-time directional ablation of the plain-LoRA model."""

    adapter_source: str = Field("lora", description="The method whose adapter is ablated.")


@register_method("ablate_inference")
class AblateInference(Method):
    """Plain LoRA with v projected out of every residual writer's output, folded into a LoRA.

    (I - V V^T)(W + s B A) - W = s (I - V V^T) B A - V (V^T W): rank r + k, so the result is an
    ordinary adapter (B' = [s (I - V V^T) B, -V], A' = [A; V^T W], scaling 1).
    """

    config_cls = AblateInferenceConfig
    derives = True

    def requires(self) -> list[str]:
        return _requires(self.config, self.config.adapter_source)

    @torch.no_grad()
    def derive(self, model: Any, ctx: TrainContext, out: Path) -> dict[str, Any]:
        cfg = self.config
        dirs, info, layer_list = _prepare(cfg, model, ctx, "all")
        layers = set(layer_list)
        src = Path(ctx.dependencies[cfg.adapter_source])
        acfg = json.loads((src / "adapter_config.json").read_text())
        tensors = load_file(str(src / "adapter_model.safetensors"))
        # peft's scaling: alpha / r, or alpha / sqrt(r) for rsLoRA
        scale = acfg["lora_alpha"] / (math.sqrt(acfg["r"]) if acfg.get("use_rslora") else acfg["r"])
        k = next(iter(dirs.values())).shape[1]
        rank = acfg["r"] + k
        weights = dict(model.named_parameters())
        new: dict[str, torch.Tensor] = {}
        targets: set[str] = set()
        for name, module in model.named_modules():
            role = role_of(name, ctx.model_type)
            if role is None or not isinstance(module, torch.nn.Linear):
                continue
            key = f"base_model.model.{name}"
            a = tensors.get(f"{key}.lora_A.weight")
            b = tensors.get(f"{key}.lora_B.weight")
            d_out, d_in = module.weight.shape
            a = torch.zeros(acfg["r"], d_in) if a is None else a.float()
            b = torch.zeros(d_out, acfg["r"]) if b is None else b.float() * scale
            layer = int(name.split(".layers.")[1].split(".")[0]) if ".layers." in name else -1
            if role == "writer" and layer in layers:
                v = dirs[layer].float()
                w = weights[f"{name}.weight"].float()
                b_new = torch.cat([b - v @ (v.T @ b), -v], dim=1)
                a_new = torch.cat([a, v.T @ w], dim=0)
            elif f"{key}.lora_A.weight" in tensors:
                b_new = torch.cat([b, torch.zeros(d_out, k)], dim=1)
                a_new = torch.cat([a, torch.zeros(k, d_in)], dim=0)
            else:
                continue
            new[f"{key}.lora_A.weight"] = a_new.contiguous()
            new[f"{key}.lora_B.weight"] = b_new.contiguous()
            targets.add(name.split(".")[-1])
        save_file(new, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
        acfg.update(
            use_rslora=False,
            r=rank,
            lora_alpha=rank,
            target_modules=sorted(targets),
            rank_pattern={},
            alpha_pattern={},
            lora_dropout=0.0,
        )
        (out / "adapter_config.json").write_text(json.dumps(acfg, indent=2, sort_keys=True))
        return {"directions": info["provenance"], "layers": sorted(layers), "rank": rank}
