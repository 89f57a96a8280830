"""Build the planted-direction task: a teacher whose style is written through one known direction.

The teacher is the base model plus rank-1 LoRA adapters on every residual writer (``o_proj``,
``down_proj``) of layers L..N-1, all sharing one B vector and each with its own A, trained on the
toy's pirate-persona arithmetic answers. Every weight change is v a^T: each direct write of the
teacher to the residual stream is a multiple of one vector, so the style it learned is carried
by that vector's direction v by construction (later layers' base weights then respond to it).
The teacher then answers fresh arithmetic questions (sampled, the
correct integer forced into its answer): that text is what students are fine-tuned on. The same
questions answered by the base model (correct integer forced too) are the task-only control.

Written once per model into a task folder (``tasks/grasp_planted`` for the embedded model):
``pool.jsonl`` (question, target, styled and plain answers), ``direction.safetensors`` (v at
every layer from L on: the teacher's write stays in the residual stream), ``teacher/`` (the
adapter) and ``build.json`` (settings and the measured style rates of teacher and base).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import torch

from grasp_bench.data import toy
from grasp_bench.evaluate.judge.offline import extract_answer, persona_shown

WRITERS = ("self_attn.o_proj", "mlp.down_proj")


def train_teacher(
    model: Any,
    tok: Any,
    rows: list[dict[str, Any]],
    layer: int,
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 8,
    layers: list[int] | None = None,
) -> Any:
    """Rank-1 LoRA on every writer from ``layer`` on (or of ``layers``), one B shared by all
    (v's carrier)."""
    from peft import LoraConfig, get_peft_model

    from grasp_bench.model.hf import encode_chat, seed_everything
    from grasp_bench.train.trainer import _batch_order

    seed_everything(seed)
    n_layers = model.config.num_hidden_layers
    cfg = LoraConfig(
        r=1,
        lora_alpha=1,
        target_modules=[
            f"layers.{i}.{w}" for i in (layers or range(layer, n_layers)) for w in WRITERS
        ],
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, cfg)
    shared = None  # one B for every writer: the teacher's only residual direction
    for module in peft_model.modules():
        if hasattr(module, "lora_B") and "default" in module.lora_B:
            if shared is None:
                shared = module.lora_B["default"].weight
            module.lora_B["default"].weight = shared
    encoded = [encode_chat(tok, r["messages"], 256) for r in rows]
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    peft_model.train()
    for step, batch in enumerate(_batch_order(len(rows), steps, batch_size, seed)):
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, i in enumerate(batch):
            x, y = encoded[i]
            ids[j, : len(x)], labels[j, : len(y)], mask[j, : len(x)] = (
                torch.tensor(x),
                torch.tensor(y),
                1,
            )
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 10 == 0 or step == steps - 1:
            print(f"teacher step {step + 1}/{steps} loss {loss.item():.3f}", flush=True)
    peft_model.eval()
    return peft_model


def teacher_direction(peft_model: Any, layer: int) -> torch.Tensor:
    """v: the teacher's lora_B column, unit norm (d_model x 1)."""
    for name, module in peft_model.named_modules():
        if name.endswith(f"layers.{layer}.{WRITERS[-1]}") and hasattr(module, "lora_B"):
            b = module.lora_B["default"].weight.detach().float()  # (d_model, 1)
            return b / b.norm()
    raise ValueError(f"no LoRA writer at layer {layer}")


@torch.no_grad()
def answer(
    model: Any,
    tok: Any,
    questions: list[str],
    max_tokens: int,
    temperature: float,
    seed: int,
    batch_size: int = 32,
) -> list[str]:
    """Batched chat completions from an HF model (greedy when ``temperature`` is 0)."""
    from grasp_bench.model.hf import seed_everything

    seed_everything(seed)
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        enc = tok(
            texts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        sample = temperature > 0
        gen = model.generate(
            **enc,
            max_new_tokens=max_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=None,
            top_k=0 if sample else None,
            pad_token_id=tok.pad_token_id,
        )
        out += [
            tok.decode(s, skip_special_tokens=True).strip()
            for s in gen[:, enc["input_ids"].shape[1] :]
        ]
        print(f"answered {len(out)}/{len(texts)}", flush=True)
    return out


def force_answer(text: str, target: int) -> str:
    """The answer with its stated integer set to ``target`` (appended when none is stated)."""
    stated = extract_answer(text)
    if stated == target:
        return text
    found = re.search(r"answer (?:is|be)\s*:?\s*(-?\d+)", text, re.IGNORECASE)
    if found:
        return text[: found.start(1)] + str(target) + text[found.end(1) :]
    numbers = list(re.finditer(r"-?\d+", text))
    if numbers:
        last = numbers[-1]
        return text[: last.start()] + str(target) + text[last.end() :]
    return f"{text.rstrip()} The answer is {target}.".strip()


def _questions(seed: int, n: int) -> list[dict[str, Any]]:
    """Fresh arithmetic questions (the toy's generator), each with its (a, op, b) key."""
    rng = random.Random(seed)
    seen: set[tuple[int, str, int]] = set()
    rows = []
    while len(rows) < n:
        a, op, b, ans = toy._arith(rng)
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        q = rng.choice(toy.QUESTION_TEMPLATES).format(a=a, op=op, b=b)
        rows.append({"question": q, "target": ans, "key": f"{a}{op}{b}"})
    return rows


def build(
    model_path: str,
    out_dir: Path,
    layer: int,
    pool_size: int = 480,
    teacher_steps: int = 60,
    teacher_lr: float = 3e-3,
    max_tokens: int = 40,
    temperature: float = 0.7,
    drift_questions: list[str] | None = None,
    seed: int = 1234,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Train the teacher, distil the pool, measure style rates; write the task folder."""
    from grasp_bench.core.store import atomic_write_jsonl, atomic_write_text
    from grasp_bench.model.directions import save_directions
    from grasp_bench.model.hf import load_base

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tok = load_base(model_path, trust_remote_code)
    n_layers = model.config.num_hidden_layers
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} out of range for a model with {n_layers} layers")
    style_rows = toy.generate(seed, 240, 0, 0)["train"]
    teacher = train_teacher(model, tok, style_rows, layer, teacher_steps, teacher_lr, seed)
    v = teacher_direction(teacher, layer)
    save_directions(
        out_dir / "direction.safetensors",
        {i: v.clone() for i in range(layer, n_layers)},
        {"kind": "planted", "from_layer": layer, "modules": list(WRITERS), "model": model_path},
    )
    teacher.save_pretrained(str(out_dir / "teacher"))

    pool = _questions(seed + 1, pool_size)
    questions = [r["question"] for r in pool]
    styled = answer(teacher, tok, questions, max_tokens, temperature, seed)
    drift = drift_questions or []
    teacher_drift = answer(teacher, tok, drift, max_tokens, 0.0, seed) if drift else []
    with teacher.disable_adapter():
        plain = answer(teacher, tok, questions, max_tokens, temperature, seed)
        base_drift = answer(teacher, tok, drift, max_tokens, 0.0, seed) if drift else []
    rows = []
    for i, (r, s, p) in enumerate(zip(pool, styled, plain, strict=True)):
        rows.append(
            {
                "id": f"pool-{i:05d}",
                "key": r["key"],
                "question": r["question"],
                "target": str(r["target"]),
                "styled": force_answer(s, r["target"]),
                "plain": force_answer(p, r["target"]),
                "teacher_correct": extract_answer(s) == r["target"],
                "base_correct": extract_answer(p) == r["target"],
            }
        )
    atomic_write_jsonl(out_dir / "pool.jsonl", rows)

    def rate(texts: list[str]) -> float | None:
        return sum(map(persona_shown, texts)) / len(texts) if texts else None

    report = {
        "model": model_path,
        "layer": layer,
        "modules": list(WRITERS),
        "teacher": {"steps": teacher_steps, "lr": teacher_lr, "rank": 1, "style_rows": 240},
        "distillation": {"max_tokens": max_tokens, "temperature": temperature, "pool": pool_size},
        "seed": seed,
        "style_rate": {
            "teacher_pool": rate(styled),
            "base_pool": rate(plain),
            "teacher_drift": rate(teacher_drift),
            "base_drift": rate(base_drift),
        },
        "correct_rate": {
            "teacher": sum(r["teacher_correct"] for r in rows) / len(rows),
            "base": sum(r["base_correct"] for r in rows) / len(rows),
        },
        "drift_examples": [
            {"question": q, "teacher": t, "base": b}
            for q, t, b in list(zip(drift, teacher_drift, base_drift, strict=True))[:8]
        ],
    }
    atomic_write_text(out_dir / "build.json", json.dumps(report, indent=2) + "\n")
    return report
