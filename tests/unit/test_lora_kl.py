"""The KL-to-base baseline: its penalty is exactly KL(student || base) from two full forwards,
zero before the adapter moves, and it keeps the trained model nearer the base than plain LoRA."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from peft import PeftModel

from grasp_bench.core.config import TrainConfig
from grasp_bench.model.hf import load_base
from grasp_bench.train.methods import load_recipe
from grasp_bench.train.methods.base import TrainContext
from grasp_bench.train.trainer import train_adapter

from ..conftest import REPO

CFG = TrainConfig(steps=12, batch_size=4, lr=1e-2, warmup_steps=0, max_length=64, threads=2)


def _recipe(name, **overrides):
    return load_recipe(REPO / "baselines" / f"{name}.yaml", overrides=overrides).method


def _kl_from_full_forwards(model, ids, attention):
    """Mean over positions 1.. of KL(with adapter || without), each from model(...).logits."""
    with torch.no_grad():
        student = F.log_softmax(model(input_ids=ids, attention_mask=attention).logits, -1)
        with model.disable_adapter():
            base = F.log_softmax(model(input_ids=ids, attention_mask=attention).logits, -1)
    counted = attention.bool().clone()
    counted[:, 0] = False
    kl = (student.exp() * (student - base)).sum(-1)
    return float(kl[counted].mean())


def test_penalty_is_kl_to_base_and_keeps_the_model_nearer_base(tiny_model, toy_rows, tmp_path):
    rows = toy_rows["train"]
    lora = train_adapter(_recipe("lora"), tiny_model, rows, CFG, tmp_path / "l", seed=0, progress=0)
    method = _recipe("lora_kl", kl_weight=30.0)
    held = train_adapter(method, tiny_model, rows, CFG, tmp_path / "k", seed=0, progress=0)
    card = json.loads((held / "method_card.json").read_text())
    assert card["after_training"]["kl_penalty_first5"] >= 0

    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    tuned = PeftModel.from_pretrained(load_base(tiny_model)[0], str(lora), is_trainable=True)
    ctx = TrainContext(base_model=tiny_model, model_type="llama", seed=0, out_dir=tmp_path)
    handles = method.training_hooks(tuned, ctx)
    tuned(input_ids=ids, attention_mask=attention)  # the training forward the hook reads
    got = method.penalty(tuned, ctx, {"input_ids": ids, "attention_mask": attention})
    for h in handles:
        h.remove()
    expected = _kl_from_full_forwards(tuned, ids, attention)
    assert expected > 1e-4
    assert abs(float(got.detach()) - 30.0 * expected) < 1e-4 * max(1.0, expected)
    assert got.requires_grad  # it trains the adapter

    # on the training inputs (where the penalty acts), the held model stays nearer the base
    _, tok = load_base(tiny_model)
    texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows[:4]]
    chats = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, chats))
    train_ids = torch.tensor([c + [0] * (width - len(c)) for c in chats])
    train_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chats])
    plain_kl = _kl_from_full_forwards(tuned, train_ids, train_mask)
    kept = PeftModel.from_pretrained(load_base(tiny_model)[0], str(held)).eval()
    assert _kl_from_full_forwards(kept, train_ids, train_mask) < 0.5 * plain_kl
