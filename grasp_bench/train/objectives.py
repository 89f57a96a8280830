"""What a training step minimises: the causal-LM loss on label tokens (sft), or the KL to a
teacher's stored log-probabilities over a restricted vocabulary (distill), and the rule that
picks one from the rows."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file


def _takes_logits_to_keep(model: Any) -> bool:
    """Whether the (peft-wrapped) model's forward can skip positions in its LM head."""
    import inspect

    forward = model.get_base_model().forward
    return "logits_to_keep" in inspect.signature(forward).parameters


def labelled_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The causal-LM loss (mean cross-entropy over label tokens, as transformers computes it)
    with the LM head applied only at positions whose next token is a label in some row: on
    chat data most positions are prompt or padding, and the vocabulary projection is the
    largest matmul of a small model."""
    labels = batch["labels"]
    targets = labels[:, 1:]
    keep = (targets != -100).any(dim=0).nonzero().squeeze(1)
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep
    ).logits
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets[:, keep].reshape(-1),
        ignore_index=-100,
    )


def resolve_objective(objective: str, rows: list[dict[str, Any]]) -> str:
    """``auto``: distill when every row carries stored targets, sft when none does."""
    carrying = sum("distill" in r for r in rows)
    if objective == "auto":
        if 0 < carrying < len(rows):
            raise ValueError(
                f"{carrying} of {len(rows)} training rows carry distillation targets: set"
                " train.objective, or give every row (or none) a `distill` field"
            )
        return "distill" if rows and carrying == len(rows) else "sft"
    if objective == "distill" and carrying < len(rows):
        missing = next(i for i, r in enumerate(rows) if "distill" not in r)
        raise ValueError(f"train.objective distill: training row {missing + 1} has no targets")
    return objective


SAMPLED_FLOOR = -30.0  # log-probability of the tokens a sampled (one-hot) target did not draw


class DistillData:
    """Prompts, restricted samples and teacher log-probabilities of distillation rows, read once
    from the safetensors files the rows name (checked against the sha256 each row records)."""

    def __init__(self, rows: list[dict[str, Any]], tokenizer: Any):
        from grasp_bench.data.tasks import tasks_dir
        from grasp_bench.model.distill import Encoded

        files: dict[str, dict[str, torch.Tensor]] = {}
        self.encoded: list[Encoded] = []
        targets = []
        vocab = None
        for n, row in enumerate(rows, 1):
            ref = row["distill"]
            if ref["file"] not in files:
                rel = Path(ref["file"])
                if rel.is_absolute() or ".." in rel.parts:
                    raise ValueError(
                        f"training row {n}: distill.file {ref['file']!r} must be a path inside"
                        " the tasks directory"
                    )
                path = tasks_dir() / rel
                if not path.is_file():
                    raise FileNotFoundError(f"training row {n}: distill.file {path} is missing")
                found = hashlib.sha256(path.read_bytes()).hexdigest()
                if found != ref["sha256"]:
                    raise ValueError(
                        f"training row {n}: distill.sha256 {ref['sha256']} but {path} has {found}"
                    )
                files[ref["file"]] = load_file(str(path))
            t = files[ref["file"]]
            if vocab is not None and not torch.equal(vocab, t["vocab"]):
                raise ValueError(f"training row {n}: a different restricted vocabulary")
            vocab = t["vocab"]
            prompt = tokenizer.apply_chat_template(
                row["messages"][:-1], tokenize=False, add_generation_prompt=True
            )
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            sample = t[f"{ref['key']}.tokens"][ref["index"]]
            self.encoded.append(Encoded(prompt_ids, sample.tolist()))
            logp = t[f"{ref['key']}.logp"][ref["index"]]
            if ref.get("targets", "soft") == "sampled":
                # the sampled token itself (cross-entropy): a distribution equal to the
                # student's start gives no gradient, the sample it drew does
                hit = (vocab.unsqueeze(0) == sample.unsqueeze(1)).float()
                logp = torch.where(hit > 0, 0.0, SAMPLED_FLOOR)
            targets.append(logp)
        self.targets = torch.stack(targets) if targets else torch.empty(0)
        self.vocab = vocab

    def loss(
        self, model: Any, indices: list[int], pad_id: int, device: str
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """KL(teacher || student) over the restricted vocabulary, mean over the batch's
        positions; and the batch's inputs (for a method's penalty)."""
        from grasp_bench.model.distill import (
            answer_mask,
            restricted_kl,
            restricted_logits,
            right_padded,
        )

        rows = [self.encoded[i] for i in indices]
        ids, mask, pos = right_padded(rows, pad_id)
        ids, mask = ids.to(device), mask.to(device)
        logits = restricted_logits(model, ids, mask, pos.to(device), self.vocab.to(device))
        target = self.targets[indices].to(device)
        loss = restricted_kl(logits, target, answer_mask(rows).to(device))
        return loss, {"input_ids": ids, "attention_mask": mask}
