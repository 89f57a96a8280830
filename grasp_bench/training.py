"""The one shared trainer: every method's adapter is built here, so methods differ only in
their hooks.

A plain loop (nanoGPT-style) over chat data with the loss on assistant tokens only. It is
seeded, checkpoints trainable weights and optimiser state as safetensors so an interrupted run
resumes at the step it reached, and saves the adapter (safetensors) with a method card.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from grasp_bench.config import TrainConfig
from grasp_bench.hf import encode_chat, load_base, seed_everything
from grasp_bench.methods.base import Method, TrainContext
from grasp_bench.store import atomic_write_json, stable_hash
from grasp_bench.versions import versions

CARD = "method_card.json"


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def _batch_order(n: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Every step's example indices, fixed by the seed, so a resume continues the same order."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < steps * batch_size:
        epoch = list(range(n))
        rng.shuffle(epoch)
        order += epoch
    return [order[s * batch_size : (s + 1) * batch_size] for s in range(steps)]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# -- checkpoints: safetensors + JSON, never pickle ------------------------------------------


def _save_checkpoint(path: Path, model: Any, optimizer: torch.optim.Optimizer, step: int) -> None:
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".ckpt."))
    trainable = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(tmp / "trainable.safetensors"))
    state = optimizer.state_dict()
    opt_tensors = {
        f"{idx}.{key}": (val if torch.is_tensor(val) else torch.tensor(val)).contiguous()
        for idx, entry in state["state"].items()
        for key, val in entry.items()
    }
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    meta = {
        "step": step,
        "param_groups": state["param_groups"],
        "rng": torch.get_rng_state().tolist(),
    }
    (tmp / "state.json").write_text(json.dumps(meta))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model: Any, optimizer: torch.optim.Optimizer) -> int:
    trainable = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in trainable.items():
            params[name].copy_(value)
    meta = json.loads((path / "state.json").read_text())
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in load_file(str(path / "optimizer.safetensors")).items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = val
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(torch.tensor(meta["rng"], dtype=torch.uint8))
    return int(meta["step"])


def _finish_adapter(tmp: Path, adapter_dir: Path, card: dict[str, Any]) -> Path:
    atomic_write_json(tmp / CARD, {**card, "versions": versions()})
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    os.replace(tmp, adapter_dir)
    return adapter_dir


def _derive(method, model, ctx, out_dir, adapter_dir, base_model, method_config, seed) -> Path:
    """Methods that post-process a dependency's adapter (no training of their own)."""
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".adapter."))
    try:
        extra = method.derive(model, ctx, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    card = {
        "method": method.name,
        "config": method_config or method.config.model_dump(mode="json"),
        "base_model": base_model,
        "seed": seed,
        "derived_from": {k: str(v) for k, v in ctx.dependencies.items()},
        **extra,
    }
    return _finish_adapter(tmp, adapter_dir, card)


# -- the trainer -----------------------------------------------------------------------------


def train_adapter(
    method: Method,
    base_model: str,
    train_rows: list[dict[str, Any]],
    cfg: TrainConfig,
    out_dir: Path,
    seed: int,
    dependencies: dict[str, Path] | None = None,
    contrast_rows: list[dict[str, Any]] | None = None,
    method_config: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> Path:
    """Train ``method``'s adapter and save it to ``out_dir/adapter``; resumable; returns it."""
    from peft import get_peft_model

    out_dir = Path(out_dir)
    adapter_dir = out_dir / "adapter"
    if (adapter_dir / CARD).exists():
        return adapter_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(seed)
    model, tokenizer = load_base(base_model, trust_remote_code)
    model_type = model.config.model_type
    ctx = TrainContext(
        base_model=base_model,
        model_type=model_type,
        seed=seed,
        out_dir=out_dir,
        dependencies=dependencies or {},
        train_rows=train_rows,
        contrast_rows=contrast_rows or [],
        tokenizer=tokenizer,
    )
    if method.derives:
        return _derive(method, model, ctx, out_dir, adapter_dir, base_model, method_config, seed)
    model = get_peft_model(model, method.lora_config(model_type))
    card: dict[str, Any] = {"before_training": method.before_training(model, ctx)}
    encoded = [encode_chat(tokenizer, r["messages"], cfg.max_length) for r in train_rows]
    batches = _batch_order(len(encoded), cfg.steps, cfg.batch_size, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out_dir / "checkpoint"
    start = 0
    if ckpt.exists():
        start = _load_checkpoint(ckpt, model, optimizer)
        method.after_step(model, ctx)
    hooks = method.training_hooks(model, ctx)
    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    bar = tqdm(
        range(start, cfg.steps),
        desc=f"train {method.name}",
        disable=not progress,
        initial=start,
        total=cfg.steps,
    )
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = _collate([encoded[i] for i in batches[step]], tokenizer.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.after_step(model, ctx)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _save_checkpoint(ckpt, model, optimizer, step + 1)
    elapsed = time.perf_counter() - started
    for h in hooks:
        h.remove()
    card["seconds_per_step"] = elapsed / max(1, cfg.steps - start)
    card["after_training"] = method.after_training(model, ctx)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".adapter."))
    model.save_pretrained(tmp, safe_serialization=True)
    _finish_adapter(
        tmp,
        adapter_dir,
        {
            "method": method.name,
            "config": method_config or method.config.model_dump(mode="json"),
            "base_model": base_model,
            "data_hash": stable_hash(train_rows),
            "seed": seed,
            "train": cfg.model_dump(),
            "final_losses": losses[-5:],
            "resumed_from_step": start,
            **card,
        },
    )
    shutil.rmtree(ckpt, ignore_errors=True)
    return adapter_dir
