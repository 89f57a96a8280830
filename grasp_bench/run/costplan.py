"""What a sweep will cost, before it starts: training tokens and GPU-hours from a FLOPs model,
generated tokens, judge calls and their price, and peak GPU memory per run.

Everything here is an estimate from a model's shape and the experiment's settings, never a
measurement; each assumption is a field of ``Assumptions`` (printed with the plan, overridable
from the command line), so a user can put in their own GPU, price or data length.

- Training: LoRA costs 4 x parameters FLOPs per token (2 forward, 2 backward through the
  activations; the frozen weights get no gradient), 6 x with gradient checkpointing (one more
  forward), at ``mfu`` of the GPU's dense bf16 peak.
- Generation: answers of ``answer_share`` x max_tokens, at ``decode_tokens_per_s`` (a
  throughput that shrinks with model size: ``decode_scale`` / parameters in billions).
- Judging: every drift answer once per LLM rubric, a prompt of ``judge_prompt_tokens`` plus the
  answer in, one token out (logprob-weighted grades), at the judge model's price per million
  tokens; offline judges cost nothing.
- Memory: bf16 weights (4-bit: ~0.55 bytes per parameter), the hidden state of every layer
  kept for the backward (all of a layer's activations without checkpointing), and the LM head's
  logits at labelled positions (bf16, plus float32 for the loss).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# (hidden, layers, intermediate, vocab, heads, kv heads, tied embeddings) of the models the
# paper configs name, so a plan needs no download; any other is read from a local config.json.
KNOWN_SHAPES: dict[str, tuple[int, int, int, int, int, int, bool]] = {
    "Qwen/Qwen2.5-7B-Instruct": (3584, 28, 18944, 152064, 28, 4, False),
    "Qwen/Qwen2.5-14B-Instruct": (5120, 48, 13824, 152064, 40, 8, False),
    "Qwen/Qwen2.5-32B-Instruct": (5120, 64, 27648, 152064, 40, 8, False),
    "Qwen/Qwen2.5-Coder-32B-Instruct": (5120, 64, 27648, 152064, 40, 8, False),
    "HuggingFaceTB/SmolLM2-135M-Instruct": (576, 30, 1536, 49152, 9, 3, True),
}

# USD per million tokens (input, output), as OpenAI listed them in 2025: check current prices
# and pass --judge-price for another judge.
JUDGE_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
}


@dataclass(frozen=True)
class Assumptions:
    gpu: str = "H100 SXM"
    peak_tflops: float = 989.0  # dense bf16
    mfu: float = 0.35
    gpu_hour_usd: float = 3.0
    tokens_per_example: int = 300  # training sequence length actually used (capped at max_length)
    answer_share: float = 0.5  # of max_tokens, per generated answer
    decode_scale: float = 80_000.0  # tokens/s x params(B): 2,500 tokens/s for a 32B model
    judge_prompt_tokens: int = 400
    judge_price: tuple[float, float] | None = None  # None: the judge model's listed price

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied: bool = False

    @property
    def params(self) -> float:
        """Every weight (what memory holds); biases and norms left out."""
        h, i, head = self.hidden, self.intermediate, self.hidden // self.heads
        attention = 2 * h * h + 2 * h * self.kv_heads * head  # q, o; k, v
        return self.layers * (attention + 3 * h * i) + (1 if self.tied else 2) * self.vocab * h

    @property
    def matmul_params(self) -> float:
        """The weights a token is multiplied by (the embedding lookup costs no FLOPs)."""
        return self.params - (0 if self.tied else self.vocab * self.hidden)


def model_shape(model: str) -> Shape | None:
    """The model's shape from the table above, its local folder or the Hugging Face cache
    (no network); None where none of them knows it."""
    from grasp_bench.model.models import DEFAULT_ALIASES

    if model in DEFAULT_ALIASES:
        model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    if model in KNOWN_SHAPES:
        return Shape(*KNOWN_SHAPES[model])
    candidates = [Path(model) / "config.json"]
    hub = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    candidates += sorted(
        (hub / f"models--{model.replace('/', '--')}").glob("snapshots/*/config.json")
    )
    for path in candidates:
        if path.is_file():
            c = json.loads(path.read_text())
            c = c.get("text_config", c)
            try:
                return Shape(c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"],
                             c["vocab_size"], c["num_attention_heads"],
                             c.get("num_key_value_heads", c["num_attention_heads"]),
                             bool(c.get("tie_word_embeddings", False)))  # fmt: skip
            except KeyError:
                return None
    return None


def _trained_and_generating(recipes: list[Any]) -> tuple[int, int]:
    trained = sum(1 for r in recipes if r.method.trains and not r.method.derives)
    return trained, len(recipes)


def plan_run(exp: Any, recipes: list[Any], a: Assumptions) -> dict[str, Any]:
    """One run's estimate (every seed and method of it)."""
    cfg = exp.config
    shape = model_shape(cfg.model)
    seeds = len(cfg.seeds)
    trained, generating = _trained_and_generating(recipes)
    seq = min(a.tokens_per_example, cfg.train.max_length)
    train_tokens = cfg.train.steps * cfg.train.batch_size * seq * trained * seeds
    answer = a.answer_share * cfg.generation.max_tokens
    prompts = cfg.data.n_eval_drift + cfg.data.n_eval_task
    gen_tokens = prompts * cfg.generation.samples * answer * generating * seeds
    drift_answers = cfg.data.n_eval_drift * cfg.generation.samples * generating * seeds
    llm_judged = cfg.judge.kind != "offline"
    calls = drift_answers * len(cfg.judge.rubrics) if llm_judged else 0
    price = (
        a.judge_price or JUDGE_PRICES.get(cfg.judge.model) if cfg.judge.kind == "openai" else None
    )
    judge_usd = None
    if calls and price:
        judge_usd = calls * ((a.judge_prompt_tokens + answer) * price[0] + price[1]) / 1e6
    row: dict[str, Any] = {
        "run": f"{cfg.task} / {cfg.model.rsplit('/', 1)[-1]}", "seeds": seeds,
        "trained arms": trained * seeds,
        "train tokens": train_tokens, "generated tokens": gen_tokens, "judge calls": calls,
        "judge usd": judge_usd if calls else 0.0,
    }  # fmt: skip
    if shape is None:
        return row | {"params": None, "train gpu h": None, "generate gpu h": None, "peak gb": None}
    p = shape.params
    per_token = (6 if cfg.train.gradient_checkpointing else 4) * shape.matmul_params
    train_h = train_tokens * per_token / (a.peak_tflops * 1e12 * a.mfu) / 3600
    gen_h = gen_tokens / (a.decode_scale / (p / 1e9)) / 3600
    b, h, i, L = cfg.train.batch_size, shape.hidden, shape.intermediate, shape.layers
    t = min(cfg.train.max_length, 2 * seq)  # a batch pads to its longest sequence
    weights = p * (0.55 if cfg.train.load_in_4bit else 2)
    layer_acts = b * t * (16 * h + 2 * i) * 2
    acts = L * b * t * h * 2 + layer_acts if cfg.train.gradient_checkpointing else L * layer_acts
    logits = b * t * 0.5 * shape.vocab * (2 + 4)  # labelled positions only (about half)
    return row | {"params": p, "train gpu h": train_h, "generate gpu h": gen_h,
                  "peak gb": (weights + acts + logits) / 1e9}  # fmt: skip


def plan_sweep_cost(runs: list[Any], a: Assumptions) -> list[dict[str, Any]]:
    """A row per planned run (``sweep.PlannedRun``) and a total row."""
    from grasp_bench.run.pipeline import load_recipes

    rows = [plan_run(r.exp, load_recipes(r.exp), a) for r in runs]
    total: dict[str, Any] = {"run": "total", "seeds": "", "params": ""}
    for key in ("trained arms", "train tokens", "generated tokens", "judge calls", "judge usd",
                "train gpu h", "generate gpu h"):  # fmt: skip
        values = [r[key] for r in rows]
        total[key] = None if any(v is None for v in values) else sum(values)
    gpu_h = [total["train gpu h"], total["generate gpu h"]]
    total["gpu usd"] = None if None in gpu_h else sum(gpu_h) * a.gpu_hour_usd
    total["peak gb"] = max((r["peak gb"] for r in rows if r["peak gb"] is not None), default=None)
    return [*rows, total]
