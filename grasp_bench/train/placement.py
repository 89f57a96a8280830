"""Where an adapter is trained: the device and dtype resolved once from the config, the base
model's preparation (gradient checkpointing, QLoRA) and moving a method's own tensors to the
model's device (the device contract in ``grasp_bench.train.trainer``'s docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grasp_bench.core.config import TrainConfig
from grasp_bench.core.hardware import resolve_device, resolve_train_dtype
from grasp_bench.train.methods.base import Method


@dataclass(frozen=True)
class TrainPlan:
    """Where and how an adapter is trained, resolved from a ``TrainConfig`` on this machine."""

    device: str
    dtype: str
    gradient_checkpointing: bool
    load_in_4bit: bool


def train_plan(cfg: TrainConfig) -> TrainPlan:
    """Resolve ``device``/``dtype`` ``auto`` and check the combination before any loading."""
    device = resolve_device(cfg.device)
    if cfg.load_in_4bit and device != "cuda":
        raise RuntimeError(
            "load_in_4bit needs a CUDA GPU (bitsandbytes' 4-bit kernels), but this run resolved"
            f" device {device!r}; set load_in_4bit false to train on the CPU"
        )
    return TrainPlan(
        device=device,
        dtype=resolve_train_dtype(cfg.dtype, device),
        gradient_checkpointing=cfg.gradient_checkpointing,
        load_in_4bit=cfg.load_in_4bit,
    )


def _prepare_model(model: Any, plan: TrainPlan) -> Any:
    """Gradient checkpointing (and QLoRA's preparation) on the base model, before peft wraps it.
    Non-reentrant checkpointing: it needs no gradient on the layers' inputs, and methods' forward
    hooks sit inside the checkpointed call, so the recomputed pass is the same pass (the tests
    compare adapters trained with and without it)."""
    kwargs = {"use_reentrant": False}
    if plan.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=plan.gradient_checkpointing,
            gradient_checkpointing_kwargs=kwargs,
        )
    if plan.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.enable_input_require_grads()  # peft's advice; only reentrant mode needs it
        model.config.use_cache = False
    return model


def _to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor in it on ``device``; parameters and containers of none are
    returned as they are (the same objects), so references into the model stay valid."""
    if isinstance(obj, torch.nn.Parameter):
        return obj
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        moved = {k: _to_device(v, device) for k, v in obj.items()}
        return obj if all(moved[k] is v for k, v in obj.items()) else type(obj)(moved)
    if isinstance(obj, (list, tuple)):
        items = [_to_device(v, device) for v in obj]
        if all(a is b for a, b in zip(items, obj, strict=True)):
            return obj
        return type(obj)(items) if isinstance(obj, list) else tuple(items)
    return obj


def move_method_state(method: Method, device: str | torch.device) -> None:
    """Put the tensors a method built in ``before_training`` on the model's device (see the
    device contract in the module docstring)."""
    device = torch.device(device)
    for name, value in list(vars(method).items()):
        moved = _to_device(value, device)
        if moved is not value:
            setattr(method, name, moved)
