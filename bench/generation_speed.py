"""Generation throughput on this machine, in one run: vLLM (base model and a LoRA adapter) and
transformers' batched generate (base, peft adapter, adapter merged), each in float32 and
bfloat16, same prompts and token budget, after a warm-up. Writes JSON and Markdown.

    .venv/bin/python bench/generation_speed.py [--adapter DIR] [--prompts 32] [--tokens 32]
    .venv/bin/python bench/generation_speed.py --emulate-avx2   # as on a CPU without AVX-512

Every number names the CPU it was measured on; the ratios are what carries to other machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results"


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Tell me something interesting about the number {i}."}]
        for i in range(n)
    ]


def vllm_child(args: argparse.Namespace) -> dict:
    """Runs in its own process (vLLM needs a __main__ guard and returns memory on exit)."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    started = time.perf_counter()
    llm = LLM(
        model=args.model,
        enable_lora=True,
        max_lora_rank=16,
        max_loras=1,
        max_model_len=1024,
        seed=0,
        gpu_memory_utilization=0.4,
        dtype=args.dtype,
    )
    out = {"engine_start_s": round(time.perf_counter() - started, 1)}
    prompts = _prompts(args.prompts)
    params = SamplingParams(temperature=0.0, max_tokens=args.tokens, ignore_eos=True)
    for name, lora in (("base", None), ("lora", LoRARequest("a", 1, args.adapter))):
        llm.chat(prompts[:2], params, lora_request=lora, use_tqdm=False)  # warm-up
        t = time.perf_counter()
        outs = llm.chat(prompts, params, lora_request=lora, use_tqdm=False)
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        out[f"{name}_tokens_per_s"] = round(tokens / (time.perf_counter() - t), 1)
    return out


def hf_child(args: argparse.Namespace) -> dict:
    import torch
    from peft import PeftModel

    from grasp_bench.hf import load_base

    model, tok = load_base(args.model, dtype=args.dtype)
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in _prompts(args.prompts)
    ]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def rate(m) -> float:
        kw = {"max_new_tokens": args.tokens, "min_new_tokens": args.tokens, "do_sample": False}
        with torch.inference_mode():
            m.generate(**{k: v[:2] for k, v in enc.items()}, **kw, pad_token_id=tok.pad_token_id)
            t = time.perf_counter()
            m.generate(**enc, **kw, pad_token_id=tok.pad_token_id)
        return round(args.tokens * args.prompts / (time.perf_counter() - t), 1)

    out = {"base_tokens_per_s": rate(model.eval())}
    peft = PeftModel.from_pretrained(model, args.adapter).eval()
    out["peft_tokens_per_s"] = rate(peft)
    out["merged_tokens_per_s"] = rate(peft.merge_and_unload())
    return out


def _child(engine: str, dtype: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", engine, "--dtype", dtype, "--model", args.model]
    cmd += ["--adapter", args.adapter, "--prompts", str(args.prompts)]
    cmd += ["--tokens", str(args.tokens)]
    env = dict(os.environ)
    if args.emulate_avx2:  # oneDNN and ATen kernels as on an AVX2-only CPU (no native bf16)
        env.update(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"error": done.stderr[-500:]}
    return json.loads(line[len("RESULT ") :])


def _adapter(model: str, tmp: Path) -> str:
    from grasp_bench.config import TrainConfig
    from grasp_bench.data.toy import generate
    from grasp_bench.methods import load_recipe
    from grasp_bench.training import train_adapter

    recipe = load_recipe(Path(__file__).parents[1] / "baselines" / "lora.yaml")
    cfg = TrainConfig(steps=2, batch_size=4)
    rows = generate(0, 16, 1, 1)["train"]
    return str(train_adapter(recipe.method, model, rows, cfg, tmp, seed=0, progress=False))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=["vllm", "hf"])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--model", default=None)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--emulate-avx2", action="store_true", help="Kernels limited to AVX2.")
    args = ap.parse_args()
    if args.child:
        result = (vllm_child if args.child == "vllm" else hf_child)(args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    from grasp_bench.hardware import describe
    from grasp_bench.models import resolve_model

    args.model = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        args.adapter = args.adapter or _adapter(args.model, Path(tmp))
        results = {
            f"{engine}/{dtype}": _child(engine, dtype, args)
            for engine in ("vllm", "hf")
            for dtype in ("float32", "bfloat16")
        }
    machine = describe()
    if args.emulate_avx2:
        machine.update(cpu=f"{machine['cpu']} limited to AVX2", cpu_native_bf16=False)
    report = {"machine": machine, "prompts": args.prompts, "tokens": args.tokens, **results}
    stem = "generation_speed" + ("_avx2" if args.emulate_avx2 else "")
    OUT.mkdir(exist_ok=True)
    (OUT / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Generation speed ({machine['cpu']}, native bf16: {machine['cpu_native_bf16']};"
        f" {args.prompts} prompts x {args.tokens} tokens)",
        "",
        "| engine / dtype | start s | base tok/s | LoRA tok/s | merged tok/s |",
        "|---|---|---|---|---|",
    ]
    for key, r in results.items():
        lora = r.get("lora_tokens_per_s", r.get("peft_tokens_per_s", ""))
        lines.append(
            f"| {key} | {r.get('engine_start_s', '')} | {r.get('base_tokens_per_s', '')} |"
            f" {lora} | {r.get('merged_tokens_per_s', '')} |"
        )
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
