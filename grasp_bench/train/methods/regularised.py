"""Plain LoRA held near the base model by a KL penalty: the simple baseline users ask for first.

The penalty is KL(student || base) over the full vocabulary at every attended position but the
first, on the batch being trained (the trainer's own inputs). It charges the adapter for every
change to the next-token distribution, wanted or not, so it is the label-free brake that a
targeted removal must beat at the same task cost. The base distribution comes from a forward
with the adapter disabled (no second copy of the model), the student's from the decoder output
the training forward already computed (a hook), so the penalty costs one forward without
gradients and the LM head over the counted positions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from grasp_bench.model.hooks import causal_lm
from grasp_bench.train.methods.base import LoraMethodConfig, Method, TrainContext, register_method


class LoraKlConfig(LoraMethodConfig):
    """Plain LoRA plus a KL-to-base penalty on the training inputs."""

    kl_weight: float = Field(
        1.0, gt=0, description="Weight of KL(student || base), mean over counted positions."
    )


def kl_to_base(
    head: Any, student_hidden: torch.Tensor, base_hidden: torch.Tensor, counted: torch.Tensor
) -> torch.Tensor:
    """Mean over ``counted`` positions of KL(student || base) over the full vocabulary, from
    each model's final hidden states and the shared (frozen) LM head."""
    student = F.log_softmax(head(student_hidden[counted]).float(), dim=-1)
    with torch.no_grad():
        base = F.log_softmax(head(base_hidden[counted]).float(), dim=-1)
    return (student.exp() * (student - base)).sum(-1).mean()


@register_method("lora_kl")
class LoraKl(Method):
    """Plain LoRA with weight x KL(student || base) added to every step's loss."""

    config_cls = LoraKlConfig

    def training_hooks(self, model: Any, ctx: TrainContext) -> list[Any]:
        self._hidden: torch.Tensor | None = None
        self._penalties: list[float] = []

        def record(_m, _i, output) -> None:
            self._hidden = output[0]  # the decoder's last hidden state (after its final norm)

        return [causal_lm(model).get_decoder().register_forward_hook(record)]

    def penalty(self, model: Any, ctx: TrainContext, inputs: dict[str, Any]) -> Any:
        cfg = self.config
        assert isinstance(cfg, LoraKlConfig)
        student, self._hidden = self._hidden, None
        if student is None:
            raise RuntimeError("lora_kl: the training forward did not run the decoder's hook")
        ids, attention = inputs["input_ids"], inputs["attention_mask"]
        lm = causal_lm(model)
        with torch.no_grad(), model.disable_adapter():
            base = lm.get_decoder()(input_ids=ids, attention_mask=attention)[0]
        self._hidden = None  # the base pass fired the hook too
        counted = attention.bool().clone()
        counted[:, 0] = False
        total = cfg.kl_weight * kl_to_base(lm.get_output_embeddings(), student, base, counted)
        self._penalties.append(float(total.detach()))
        return total

    def after_training(self, model: Any, ctx: TrainContext) -> dict[str, Any]:
        first, last = self._penalties[:5], self._penalties[-5:]
        return {"kl_penalty_first5": sum(first) / len(first),
                "kl_penalty_last5": sum(last) / len(last)}  # fmt: skip
