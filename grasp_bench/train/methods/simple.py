"""The two reference points: the untouched base model and plain LoRA (the model that drifts)."""

from __future__ import annotations

from grasp_bench.train.methods.base import LoraMethodConfig, Method, MethodConfig, register_method


class BaseConfig(MethodConfig):
    """No settings: the pretrained model as it is."""


@register_method("base")
class PretrainedModel(Method):
    """The pretrained model, measured with the same prompts, sampling and judge."""

    config_cls = BaseConfig
    trains = False
    serving = "base"


class PlainLoraConfig(LoraMethodConfig):
    """Plain LoRA: the adapter shape and nothing else."""


@register_method("lora")
class Lora(Method):
    """Plain LoRA fine-tune on the task's training set."""

    config_cls = PlainLoraConfig


@register_method("lora_control")
class LoraControl(Method):
    """Plain LoRA on the task's control set (the same task without the spurious factor): how
    much drift the task alone causes, the floor a removal method can reach."""

    config_cls = PlainLoraConfig
    trains_on = "control"
