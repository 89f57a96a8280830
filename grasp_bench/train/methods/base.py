"""The method interface and registry (peft-style: a config model plus one class).

A method is the only place where fine-tuning methods differ. The shared trainer calls its
hooks; the registry maps recipe names to classes, so a user adds a method with
``@register_method`` in their own module and never touches the trainer or the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from grasp_bench.core.registry import Registry
from grasp_bench.core.yaml_loader import StrictModel

Serving = Literal["base", "vllm-lora", "hf-hooks"]


class MethodConfig(StrictModel):
    """Base of every method's config. Fields carry descriptions; validation lives in pydantic."""


class LoraMethodConfig(MethodConfig):
    """Adapter shape shared by every LoRA-trained method."""

    rank: int = Field(8, gt=0, description="LoRA rank r.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha (scaling = alpha / rank).")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout.")
    target_modules: Literal["all", "writers", "readers"] = Field(
        "all", description="Which linear modules get adapters (resolved per architecture)."
    )
    use_rslora: bool = Field(
        False,
        exclude_if=lambda v: v is False,  # unset: recipe configs (and stage hashes) as before
        description="Rank-stabilised LoRA: scaling alpha / sqrt(rank) instead of alpha / rank.",
    )


@dataclass
class TrainContext:
    """What a method may look at while its adapter is trained."""

    base_model: str
    model_type: str
    seed: int
    out_dir: Path
    dependencies: dict[str, Path] = field(default_factory=dict)
    train_rows: list[dict[str, Any]] = field(default_factory=list)
    contrast_rows: list[dict[str, Any]] = field(default_factory=list)
    tokenizer: Any = None
    # The trainer's own view of training rows as right-padded batches (input ids, attention
    # mask, positions that count), so a method reads the stream on exactly what it trains on:
    # response tokens of chat rows, every token but the first of distillation rows.
    batches: Callable[[list[dict[str, Any]]], Iterable[tuple[Any, Any, Any]]] | None = None


class Method:
    """One fine-tuning method. Override only the hooks you need."""

    name: ClassVar[str]
    config_cls: ClassVar[type[MethodConfig]] = MethodConfig
    trains: ClassVar[bool] = True
    derives: ClassVar[bool] = False
    serving: ClassVar[Serving] = "vllm-lora"
    trains_on: ClassVar[Literal["train", "control"]] = "train"

    def __init__(self, config: MethodConfig):
        self.config = config

    def requires(self) -> list[str]:
        """Names of methods (in the same experiment and seed) whose adapters this one needs."""
        return []

    def lora_config(self, model_type: str):
        from peft import LoraConfig

        from grasp_bench.model.modules import lora_targets

        cfg = self.config
        assert isinstance(cfg, LoraMethodConfig)
        return LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=lora_targets(model_type, cfg.target_modules),
            use_rslora=cfg.use_rslora,
            bias="none",
            task_type="CAUSAL_LM",
        )

    def before_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        """Called once on the peft model before the first step; returns card entries."""
        return {}

    def training_hooks(self, model: Any, ctx: TrainContext) -> list[Any]:
        """Forward hooks active during training only; returns their removable handles."""
        return []

    def penalty(self, model: Any, ctx: TrainContext, inputs: dict[str, Any]) -> Any:
        """An extra loss term for the step just forwarded (``inputs``: input_ids and
        attention_mask of the batch; the method's training hooks saw that forward), or None."""
        return None

    def after_step(self, model: Any, ctx: TrainContext) -> None:
        """Called after every optimiser step (and once after a resume)."""

    def after_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        """Called once after the last step, before the adapter is saved; returns card entries."""
        return {}

    def derive(self, model: Any, ctx: TrainContext, out: Path) -> dict[str, Any]:
        """For ``derives`` methods: write a peft adapter into ``out`` from the dependencies'
        adapters instead of training (``model`` is the base model); returns card entries."""
        raise NotImplementedError

    def inference_hooks(self, model: Any, adapter_dir: Path) -> list[Any]:
        """For ``hf-hooks`` serving: hooks active while this method's completions are made."""
        return []


METHODS: Registry[type[Method]] = Registry("method", builtins=("grasp_bench.train.methods",))


def register_method(name: str, *, replace: bool = False):
    """Class decorator: make a method available to recipes by ``name`` (a name already taken
    by another class is an error unless ``replace=True``)."""

    def wrap(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.register(name, cls, replace=replace)

    return wrap


def get_method_class(name: str) -> type[Method]:
    return METHODS.get(name)


def registered_methods() -> list[str]:
    return METHODS.names()
