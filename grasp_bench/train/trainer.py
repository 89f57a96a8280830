"""The one shared trainer: every method's adapter is built here, so methods differ only in
their hooks.

A plain loop (nanoGPT-style) over chat data with the loss on assistant tokens only. It is
seeded, checkpoints trainable weights and optimiser state as safetensors so an interrupted run
resumes at the step it reached, and saves the adapter (safetensors) with a method card.

Where it runs is a ``TrainPlan`` resolved once from the config: on a CUDA GPU the base weights
are bf16 (LoRA weights stay float32, as peft keeps them), optionally 4-bit (QLoRA) and with
gradient checkpointing; on a CPU everything is float32, as every run before the plan existed.

Device contract for methods: ``before_training`` runs with the model still on the CPU (so
direction readings that feed CPU tensors through it work unchanged); the model is then moved to
the device, and every tensor the method keeps in its attributes (directly or inside lists,
tuples and dicts: projectors, directions, steering vectors) is moved with it. Parameters keep
their identity through the move, so a method may hold on to the model's LoRA weights. A 4-bit
model cannot move: it is on the GPU from the start, and ``before_training`` must then put what
it builds on the weights' device itself.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from grasp_bench.core.config import TrainConfig
from grasp_bench.core.hardware import gpu_name
from grasp_bench.core.rundir import ADAPTER, CHECKPOINT, METHOD_CARD
from grasp_bench.core.store import TMP_SUFFIX, atomic_write_json, replace_dir, stable_hash
from grasp_bench.core.versions import versions
from grasp_bench.model.distill import distill_batches
from grasp_bench.model.hf import encode_chat, load_base, seed_everything
from grasp_bench.train.methods.base import Method, TrainContext
from grasp_bench.train.objectives import (  # noqa: F401  (re-exported)
    SAMPLED_FLOOR,
    DistillData,
    _takes_logits_to_keep,
    labelled_loss,
    resolve_objective,
)
from grasp_bench.train.placement import (  # noqa: F401  (re-exported)
    TrainPlan,
    _prepare_model,
    move_method_state,
    train_plan,
)

CARD = METHOD_CARD


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
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".ckpt.", suffix=TMP_SUFFIX))
    trainable = {
        n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }
    save_file(trainable, str(tmp / "trainable.safetensors"))
    state = optimizer.state_dict()
    opt_tensors = {
        f"{idx}.{key}": (val if torch.is_tensor(val) else torch.tensor(val)).cpu().contiguous()
        for idx, entry in state["state"].items()
        for key, val in entry.items()
    }
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    meta = {
        "step": step,
        "param_groups": state["param_groups"],
        "rng": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        meta["cuda_rng"] = torch.cuda.get_rng_state().tolist()
    (tmp / "state.json").write_text(json.dumps(meta))
    # a kill leaves a whole checkpoint or none (then training restarts, deterministically)
    replace_dir(tmp, path)


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
    if "cuda_rng" in meta and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.tensor(meta["cuda_rng"], dtype=torch.uint8))
    return int(meta["step"])


def _finish_adapter(tmp: Path, adapter_dir: Path, card: dict[str, Any]) -> Path:
    atomic_write_json(tmp / CARD, {**card, "versions": versions()})
    replace_dir(tmp, adapter_dir)
    return adapter_dir


def _derive(method, model, ctx, out_dir, adapter_dir, base_model, method_config, seed) -> Path:
    """Methods that post-process a dependency's adapter (no training of their own)."""
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".adapter.", suffix=TMP_SUFFIX))
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


class TrainingSession:
    """One method's model, optimiser, hooks and batches, ready to take optimiser steps.

    ``train_adapter`` runs a whole session; the step-time benchmark opens one per method and
    interleaves their single steps, so both time exactly the same step."""

    def __init__(
        self,
        method: Method,
        base_model: str,
        train_rows: list[dict[str, Any]],
        cfg: TrainConfig,
        out_dir: Path,
        seed: int,
        dependencies: dict[str, Path] | None = None,
        contrast_rows: list[dict[str, Any]] | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        from peft import get_peft_model

        if method.derives:
            raise ValueError(f"{method.name} derives its adapter; it has no training steps")
        self.method, self.cfg = method, cfg
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        self.plan = plan = train_plan(cfg)  # fails here on a bad device/dtype/4-bit combination
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(seed)
        model, tokenizer = load_base(
            base_model,
            trust_remote_code,
            dtype=plan.dtype,
            device="cuda" if plan.load_in_4bit else "cpu",  # moved after before_training
            load_in_4bit=plan.load_in_4bit,
        )
        self.pad_id = tokenizer.pad_token_id
        self.objective = resolve_objective(cfg.objective, train_rows)
        if self.objective == "distill":
            self.distill = DistillData(train_rows, tokenizer)
            self.encoded = self.distill.encoded
        else:
            self.encoded = [
                encode_chat(tokenizer, r["messages"], cfg.max_length) for r in train_rows
            ]
        self.ctx = TrainContext(
            base_model=base_model,
            model_type=model.config.model_type,
            seed=seed,
            out_dir=Path(out_dir),
            dependencies=dependencies or {},
            train_rows=train_rows,
            contrast_rows=contrast_rows or [],
            tokenizer=tokenizer,
            batches=self._batches_of,
        )
        model = get_peft_model(_prepare_model(model, plan), method.lora_config(self.ctx.model_type))
        self.before_training = method.before_training(model, self.ctx)
        if not plan.load_in_4bit:
            model.to(plan.device)
        move_method_state(method, plan.device)
        if plan.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self.model = model
        self.labelled_logits = cfg.logits == "labelled" and _takes_logits_to_keep(model)
        self.batches = _batch_order(len(self.encoded), cfg.steps, cfg.batch_size, seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _batches_of(
        self, rows: list[dict[str, Any]]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``rows`` (a prefix or subset of the training rows) as the trainer encodes them."""
        if self.objective == "distill":
            index = {id(r): i for i, r in enumerate(self.ctx.train_rows)}
            yield from distill_batches([self.encoded[index[id(r)]] for r in rows], self.pad_id)
            return
        from types import SimpleNamespace

        from grasp_bench.model.directions import response_batches

        # readings run before the model moves to its device (see the device contract above)
        cpu = SimpleNamespace(device=torch.device("cpu"))
        yield from response_batches(cpu, self.ctx.tokenizer, rows)

    def resume(self, checkpoint: Path) -> int:
        """Load a checkpoint; returns the step it reached."""
        start = _load_checkpoint(checkpoint, self.model, self.optimizer)
        self.method.after_step(self.model, self.ctx)
        return start

    def start(self) -> list[Any]:
        """The method's training hooks, and the model in training mode; returns the hooks."""
        hooks = self.method.training_hooks(self.model, self.ctx)
        self.model.train()
        return hooks

    def step(self, step: int) -> float:
        """One optimiser step on the seeded batch of ``step``; returns its loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, self.cfg)
        if self.objective == "distill":
            loss, inputs = self.distill.loss(
                self.model, self.batches[step], self.pad_id, self.plan.device
            )
        else:
            batch = _collate([self.encoded[i] for i in self.batches[step]], self.pad_id)
            inputs = {k: v.to(self.plan.device) for k, v in batch.items()}
            if self.labelled_logits:
                loss = labelled_loss(self.model, inputs)
            else:
                loss = self.model(**inputs).loss
        extra = self.method.penalty(self.model, self.ctx, inputs)
        if extra is not None:
            loss = loss + extra
        return self._update(loss)

    def _update(self, loss: torch.Tensor) -> float:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_step(self.model, self.ctx)
        return loss.item()


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
    out_dir = Path(out_dir)
    adapter_dir = out_dir / ADAPTER
    if (adapter_dir / CARD).exists():
        return adapter_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if method.derives:  # no training: the float32 base on the CPU, as derivations expect
        train_plan(cfg)  # a bad device/dtype/4-bit combination fails here too
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(seed)
        model, tokenizer = load_base(base_model, trust_remote_code)
        ctx = TrainContext(
            base_model=base_model,
            model_type=model.config.model_type,
            seed=seed,
            out_dir=out_dir,
            dependencies=dependencies or {},
            train_rows=train_rows,
            contrast_rows=contrast_rows or [],
            tokenizer=tokenizer,
        )
        return _derive(method, model, ctx, out_dir, adapter_dir, base_model, method_config, seed)
    session = TrainingSession(
        method,
        base_model,
        train_rows,
        cfg,
        out_dir,
        seed,
        dependencies=dependencies,
        contrast_rows=contrast_rows,
        trust_remote_code=trust_remote_code,
    )
    model, ctx, plan = session.model, session.ctx, session.plan
    card: dict[str, Any] = {"before_training": session.before_training}
    ckpt = out_dir / CHECKPOINT
    start = session.resume(ckpt) if ckpt.exists() else 0
    hooks = session.start()
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
        losses.append(session.step(step))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _save_checkpoint(ckpt, model, session.optimizer, step + 1)
    if plan.device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    for h in hooks:
        h.remove()
    card["seconds_per_step"] = elapsed / max(1, cfg.steps - start)
    card["hardware"] = {**asdict(plan), **({"gpu": gpu_name()} if plan.device == "cuda" else {})}
    if plan.device == "cuda":
        card["hardware"]["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    card["after_training"] = method.after_training(model, ctx)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".adapter.", suffix=TMP_SUFFIX))
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
