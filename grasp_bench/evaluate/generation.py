"""Completions for every target: vLLM (one engine start for the base model and every LoRA
adapter) or batched transformers ``generate``.

vLLM runs in a child process (``python -m grasp_bench.evaluate.generation SPEC``): it needs a
``__main__`` guard for its workers, and its memory is returned when the child exits. Each
(adapter) output is written atomically as its own JSONL, so an interrupted stage resumes with
only the adapters that are missing.

Which back end ``auto`` picks (``make bench``, bench/results/generation.md: 2 Zen 4 cores,
SmolLM2-135M): on a CPU vLLM serves a LoRA adapter at less than half its base-model speed
(float32: 60 vs 134 tokens/s; its engine starts in about 5 s), while transformers with the
adapter merged into float32 weights makes 81 tokens/s. So on a CPU ``auto`` is ``hf``; on a
GPU it is vLLM, the engine users run at scale.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from grasp_bench.core.children import spawn_guarded, stop_guarded
from grasp_bench.core.config import GenerationConfig
from grasp_bench.core.hardware import (
    accelerator,
    resolve_dtype,
    vllm_enforce_eager,
    vllm_env,
    vllm_memory_fraction,
    vllm_single_process,
)
from grasp_bench.core.store import atomic_write_json, atomic_write_jsonl


def resolve_backend(requested: str = "auto", device: str | None = None) -> str:
    """``vllm`` or ``hf``: an explicit choice wins; ``auto`` is vLLM on a GPU, hf on a CPU."""
    if requested not in ("auto", "vllm", "hf"):
        raise ValueError(f"backend must be auto, vllm or hf, not {requested!r}")
    if requested != "auto":
        return requested
    return "vllm" if (device or accelerator()) == "cuda" else "hf"


def resolve_generation_dtype(requested: str, backend: str, device: str | None = None) -> str:
    """The dtype completions are generated in. ``auto`` is ``resolve_dtype``'s choice, except
    for transformers on a CPU: there float32, because a LoRA adapter merges exactly into
    float32 weights, and merged float32 measured at least as fast as unmerged bf16 even on a CPU
    with native bf16 (81 vs 69 tokens/s, median of three; bench/results/generation.md)."""
    if requested == "auto" and backend == "hf" and (device or accelerator()) == "cpu":
        return "float32"
    return resolve_dtype(requested, device)


def _sampling_record(cfg: GenerationConfig, seed: int, backend: str, dtype: str) -> dict[str, Any]:
    return {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "n": cfg.samples,
        "seed": seed,
        "backend": backend,
        "dtype": dtype,
    }


def generate_all(
    model_path: str,
    targets: dict[str, str | None],
    prompts: list[dict[str, Any]],
    cfg: GenerationConfig,
    seed: int,
    out_dir: Path,
    max_lora_rank: int = 8,
    trust_remote_code: bool = False,
) -> dict[str, Path]:
    """Generate completions for every target (name -> adapter dir, or None for the base).

    Returns name -> JSONL path. Targets already written are not generated again.
    """
    dtype = resolve_dtype(cfg.dtype)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {name: out_dir / f"{name}.jsonl" for name in targets}
    missing = {n: a for n, a in targets.items() if not outputs[n].exists()}
    if missing:
        spec = {
            "model": model_path,
            "targets": missing,
            "prompts": prompts,
            "sampling": _sampling_record(cfg, seed, "vllm", dtype),
            "max_model_len": cfg.max_model_len,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "dtype": dtype,
            "max_lora_rank": max_lora_rank,
            "trust_remote_code": trust_remote_code,
            "out_dir": str(out_dir),
        }
        spec_path = out_dir / "spec.json"
        atomic_write_json(spec_path, spec)
        env = {
            **vllm_env(),
            "VLLM_CONFIGURE_LOGGING": os.environ.get("VLLM_CONFIGURE_LOGGING", "1"),
        }
        command = [sys.executable, "-m", "grasp_bench.evaluate.generation", str(spec_path)]
        proc = spawn_guarded(command, env=env)
        try:
            proc.wait()
        finally:
            stop_guarded(proc)  # an exception or Ctrl-C here ends the vLLM process too
        if proc.returncode != 0:
            raise RuntimeError(
                f"vLLM generation failed (exit {proc.returncode}); see its log above"
            )
    return outputs


def completion_row(
    target: str,
    adapter: str | None,
    prompt: dict[str, Any],
    sample: int,
    text: str,
    finish_reason: str | None,
    sampling: dict[str, Any],
) -> dict[str, Any]:
    """One generated answer as every back end records it."""
    return {
        "target": target,
        "adapter": adapter,
        "prompt_id": prompt["prompt_id"],
        "split": prompt["split"],
        "sample": sample,
        "prompt": prompt["messages"][-1]["content"],
        "completion": text,
        "finish_reason": finish_reason,
        "sampling": sampling,
    }


def _lora_rank(adapter: str) -> int:
    return int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])


def _engine(spec: dict[str, Any]):
    from vllm import LLM

    adapters = {n: a for n, a in spec["targets"].items() if a}
    max_rank = max([spec["max_lora_rank"], *(_lora_rank(a) for a in adapters.values())])
    # vLLM accepts LoRA ranks from a fixed set; take the smallest that fits.
    max_rank = next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= max_rank)
    return LLM(
        model=spec["model"],
        enable_lora=bool(adapters),
        max_lora_rank=max_rank,
        max_loras=max(1, min(4, len(adapters))),
        max_model_len=spec["max_model_len"],
        seed=spec["sampling"]["seed"],
        gpu_memory_utilization=vllm_memory_fraction(),
        dtype=spec.get("dtype", "auto"),
        trust_remote_code=spec["trust_remote_code"],
        tensor_parallel_size=spec.get("tensor_parallel_size", 1),
        enforce_eager=vllm_enforce_eager(),
        # the model worker in this process too (see hardware.vllm_single_process)
        distributed_executor_backend="uni" if vllm_single_process() else None,
    )


def _run(spec: dict[str, Any]) -> None:
    from tqdm.auto import tqdm
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    llm = _engine(spec)
    s = spec["sampling"]
    params = SamplingParams(
        temperature=s["temperature"],
        top_p=s["top_p"],
        max_tokens=s["max_tokens"],
        n=s["n"],
        seed=s["seed"],
    )
    prompts = spec["prompts"]
    for i, (name, adapter) in enumerate(tqdm(spec["targets"].items(), desc="generate")):
        lora = LoRARequest(name, i + 1, adapter) if adapter else None
        outs = llm.chat([p["messages"] for p in prompts], params, lora_request=lora, use_tqdm=True)
        rows = [
            completion_row(name, adapter, prompt, k, sample.text, sample.finish_reason, s)
            for prompt, out in zip(prompts, outs, strict=True)
            for k, sample in enumerate(out.outputs)
        ]
        atomic_write_jsonl(Path(spec["out_dir"]) / f"{name}.jsonl", rows)


def generate_hf(
    model_path: str,
    name: str,
    adapter: str | None,
    prompts: list[dict[str, Any]],
    cfg: GenerationConfig,
    seed: int,
    out_dir: Path,
    method: Any = None,
    trust_remote_code: bool = False,
) -> Path:
    """Completions from transformers' batched ``generate``, same sampling settings as vLLM.

    Used on CPUs, where it is faster than vLLM with a LoRA adapter, and for methods whose
    intervention vLLM cannot express (``method.inference_hooks``, e.g. additive steering). In
    float32 the adapter is merged into the weights (exact up to rounding, and faster); in a
    16-bit dtype it stays a separate path, since merging would round the small update away.
    Prompts are batched by length so little is spent on padding; rows keep the prompts' order.
    """
    import torch
    from peft import PeftModel
    from tqdm.auto import tqdm

    from grasp_bench.model.hf import load_base, seed_everything
    from grasp_bench.model.hooks import remove

    out = Path(out_dir) / f"{name}.jsonl"
    if out.exists():
        return out
    dtype = resolve_dtype(cfg.dtype)
    seed_everything(seed)
    model, tok = load_base(model_path, trust_remote_code, dtype=dtype)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
        if dtype == "float32":
            model = model.merge_and_unload()
    model.eval()
    tok.padding_side = "left"
    handles = method.inference_hooks(model, Path(adapter)) if method and adapter else []
    sampling = _sampling_record(cfg, seed, "hf", dtype)
    texts = [
        tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    completions: dict[int, list[tuple[str, str]]] = {}
    sample = cfg.temperature > 0
    try:
        for start in tqdm(range(0, len(order), cfg.batch_size), desc=f"generate {name} (hf)"):
            batch = order[start : start + cfg.batch_size]
            enc = tok(
                [texts[i] for i in batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            with torch.inference_mode():
                gen = model.generate(
                    **enc,
                    max_new_tokens=cfg.max_tokens,
                    do_sample=sample,
                    temperature=cfg.temperature if sample else None,
                    top_p=cfg.top_p if sample else None,
                    top_k=0 if sample else None,
                    num_return_sequences=cfg.samples,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
            for j, seq in enumerate(gen[:, enc["input_ids"].shape[1] :]):
                stopped = bool((seq == tok.eos_token_id).any())
                text = tok.decode(seq, skip_special_tokens=True).strip()
                completions.setdefault(batch[j // cfg.samples], []).append(
                    (text, "stop" if stopped else "length")
                )
    finally:
        remove(handles)
    rows = [
        completion_row(name, adapter, prompt, k, text, finish, sampling)
        for i, prompt in enumerate(prompts)
        for k, (text, finish) in enumerate(completions[i])
    ]
    atomic_write_jsonl(out, rows)
    return out


if __name__ == "__main__":
    _run(json.loads(Path(sys.argv[1]).read_text()))
