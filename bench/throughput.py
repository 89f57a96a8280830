"""Training throughput against what the machine allows, and the cheap wins tried.

Plain LoRA's tokens/s on the toy data is set against the model's forward+backward FLOPs and
this CPU's measured matmul rate (float32 and bfloat16). Then candidate speed-ups, each a
session of its own on the same batches from the same start, stepped in interleaved rounds
(round 0 dropped): the LM head only on labelled positions (``train.logits: labelled``), bf16
autocast, one thread instead of all; each with its step time and its losses next to the
baseline's. The padding share of the batches bounds what length-sorted or packed batches
could save. Finally the same LoRA step with kernels limited to AVX2 (emulated), for the demo's
estimate on AVX2-only CPUs.

    python -m bench.throughput [--rounds 4]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import (
    AVX2_ENV,
    Target,
    emit,
    fit_linear,
    machine,
    median,
    run_child,
    table,
    targets_table,
    write_result,
)
from bench.step_time import ARMS, naive_lora, open_session, toy_data

LORA = ARMS[0]
KEPT = {
    "logits: labelled (now the default)": "yes: faster, same loss",
    "labelled + bf16 autocast": "no: the loss moves (bf16 rounding); opt-in via train.dtype",
    "labelled, 1 thread": "no: slower",
}
BEFORE = "float32, logits: all (before)"
AFTER = "logits: labelled (now the default)"


def matmul_rate(dtype: torch.dtype, n: int = 1536, repeats: int = 8) -> float:
    """Measured GFLOP/s of an n x n x n matmul (best of ``repeats``)."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def step_flops(model: Any, tokens: int, width: int) -> float:
    """Forward + backward FLOPs of one LoRA step over ``tokens`` positions of sequences
    ``width`` long: every linear layer (LM head included) 2 FLOPs per weight per token forward
    and 2 more backward for the input gradient (frozen weights need no weight gradient);
    attention scores and mixing 4 * layers * width * hidden per token, twice for backward. The
    LoRA factors' own work is under 1% at rank 8 and left out."""
    cfg = model.config
    linear = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lora_" not in name
    )
    attention = 4 * cfg.num_hidden_layers * width * cfg.hidden_size
    return tokens * (4 * linear + 2 * attention)


def padding_share(session: Any, steps: int) -> float:
    from grasp_bench.train.trainer import _collate

    real = padded = 0
    for step in range(steps):
        batch = _collate([session.encoded[i] for i in session.batches[step]], session.pad_id)
        real += int(batch["attention_mask"].sum())
        padded += batch["attention_mask"].numel()
    return 1 - real / padded


def _timed(fn: Any, *args: Any) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def avx2_child(a: argparse.Namespace) -> dict[str, Any]:
    """Seconds per plain-LoRA step (median of ``rounds`` after a warm-up) in this process."""
    data = toy_data()
    with tempfile.TemporaryDirectory() as tmp:
        session = open_session(LORA, a.model, data, Path(a.naive), Path(tmp), a.rounds + 1, 8)
        times = []
        for step in range(a.rounds + 1):
            t = time.perf_counter()
            session.step(step)
            times.append(time.perf_counter() - t)
    return {"seconds_per_step": median(times[1:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--naive")
    a = ap.parse_args()
    from grasp_bench.model.models import resolve_model

    a.model = resolve_model(a.model)
    if a.child:
        emit(avx2_child(a))
        return
    threads = torch.get_num_threads()
    rates = {"float32": matmul_rate(torch.float32), "bfloat16": matmul_rate(torch.bfloat16)}
    data = toy_data()
    steps = a.rounds + 1
    variants: dict[str, tuple[dict[str, Any], Any]] = {
        BEFORE: ({"logits": "all"}, contextlib.nullcontext),
        AFTER: ({"logits": "labelled"}, contextlib.nullcontext),
        "labelled + bf16 autocast": (
            {"logits": "labelled"},
            lambda: torch.autocast("cpu", dtype=torch.bfloat16),
        ),
        "labelled, 1 thread": ({"logits": "labelled"}, contextlib.nullcontext),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        naive = naive_lora(a.model, tmp, data)
        sessions = {
            name: open_session(
                (name.replace(" ", "_").replace(":", ""), "lora", {}),
                a.model,
                data,
                naive,
                tmp,
                steps,
                8,
                **train,
            )
            for name, (train, _) in variants.items()
        }
        names = list(sessions)
        seconds: dict[str, list[float]] = {n: [] for n in names}
        losses: dict[str, list[float]] = {n: [] for n in names}
        for r in range(steps):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                torch.set_num_threads(1 if "1 thread" in name else threads)
                with variants[name][1]():
                    t = time.perf_counter()
                    losses[name].append(sessions[name].step(r))
                    if r:
                        seconds[name].append(time.perf_counter() - t)
        torch.set_num_threads(threads)
        base = sessions[names[0]]
        batch_tokens = [
            sum(len(base.encoded[i][0]) for i in base.batches[s]) for s in range(1, steps)
        ]
        widths = [max(len(base.encoded[i][0]) for i in base.batches[s]) for s in range(1, steps)]
        pad = padding_share(base, steps)
        flops = [
            step_flops(base.model, 8 * w, w) for w in widths
        ]  # compute is spent on padded positions too
        del sessions
        scaling = {}  # seconds per step at three batch sizes: the per-sequence cost
        for size in (2, 4, 8):
            session = open_session(LORA, a.model, data, naive, tmp, 3, size)
            session.step(0)
            scaling[str(size)] = median([_timed(session.step, step) for step in (1, 2)])
        child = ["bench.throughput", "--child", "--naive", str(naive), "--rounds", "2"]
        native = run_child(child)
        avx2 = run_child(child, env=AVX2_ENV)
    fit = fit_linear([float(k) for k in scaling], list(scaling.values()))
    med = {n: median(v) for n, v in seconds.items()}
    base_s = med[names[0]]
    achieved = sum(flops) / sum(seconds[names[0]]) / 1e9
    tokens_per_s = sum(batch_tokens) / sum(seconds[names[0]])
    # the machine's rate is its best: measured again at the end (a VM's neighbours once halved
    # the float32 reading taken at the start of a round)
    rates = {k: max(v, matmul_rate(getattr(torch, k))) for k, v in rates.items()}
    loss_gap = {
        n: max(abs(x - y) for x, y in zip(losses[n], losses[names[0]], strict=True)) for n in names
    }
    avx2_ratio = (
        avx2["seconds_per_step"] / native["seconds_per_step"]
        if "seconds_per_step" in avx2 and "seconds_per_step" in native
        else None
    )
    targets = [
        Target(
            "training: achieved / measured float32 matmul rate",
            achieved / rates["float32"],
            0.3,
            note="small matmuls (576 wide), attention, softmax over 49k tokens and optimiser"
            " work run below the big-matmul rate",
        ),
        Target(
            "training: step speed-up of `logits: labelled` over all positions (same loss)",
            base_s / med[AFTER],
            1.05,
            note=f"largest loss difference {loss_gap[AFTER]:.1e} over {steps} steps",
        ),
    ]
    report = {
        "machine": machine(),
        "threads": threads,
        "matmul_gflops": rates,
        "lora_tokens_per_s": tokens_per_s,
        "achieved_gflops": achieved,
        "padding_share": pad,
        "seconds": seconds,
        "median_s": med,
        "losses": losses,
        "max_loss_difference": loss_gap,
        "scaling_s_per_step": scaling,
        "scaling_fit": fit,
        "native_child": native,
        "avx2_child": avx2,
        "avx2_over_native": avx2_ratio,
        "targets": targets,
    }
    m = report["machine"]
    lines = [
        f"# Training throughput ({m['cpu']}, {m['cores']} cores, {threads} torch threads;"
        f" plain LoRA, embedded model, toy data, batch 8)",
        "",
        f"Matmul rate measured here: float32 {rates['float32']:.0f} GFLOP/s, bfloat16"
        f" {rates['bfloat16']:.0f} GFLOP/s. Plain LoRA: {tokens_per_s:.0f} tokens/s,"
        f" {achieved:.0f} GFLOP/s of forward+backward work"
        f" ({achieved / rates['float32']:.0%} of the float32 matmul rate). Padding is"
        f" {pad:.0%} of the positions: the most length-sorted or packed batches could save"
        " (they change which examples share a step, so they are not the same training).",
        "",
        *table(
            ["variant", "median s/step", "speed-up", "largest loss difference", "kept"],
            [
                [
                    n,
                    med[n],
                    base_s / med[n],
                    loss_gap[n],
                    KEPT.get(n, ""),
                ]
                for n in names
            ],
        ),
        "",
        "Plain LoRA step at batch 2 / 4 / 8: "
        + " / ".join(f"{v:.2f}" for v in scaling.values())
        + f" s; fit {fit['fixed_s']:.2f} s + {fit['per_item_s']:.3f} s per sequence"
        f" (R^2 {fit['r2']:.3f}).",
        "",
        f"AVX2-only (emulated: oneDNN, ATen and MKL limited to AVX2): a LoRA step takes"
        f" {avx2_ratio:.2f}x the native one."
        if avx2_ratio
        else "AVX2 child failed.",
        "",
        *targets_table(targets),
    ]
    write_result("throughput", report, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
