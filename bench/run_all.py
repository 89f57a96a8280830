"""Every benchmark, one after the other (each alone on the CPU: two at once would time each
other), then bench/results/latest.md: every ratio with its target and met / missed, each
benchmark's own table, and the wall time of the whole.

    python -m bench.run_all            # or: make bench
    python -m bench.run_all --only judge,step_time
    python -m bench.run_all --report   # rebuild latest.md from the results already there
    python -m bench.run_all --only vllm_start   # an extra (see EXTRAS), never in the round
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, RESULTS, Target, machine, targets_table
from grasp_bench.core.store import atomic_write_json, atomic_write_text

# (result name, module and arguments); the order puts the cheap, informative ones first
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("throughput", ["bench.throughput", "--rounds", "3"]),
    ("step_time", ["bench.step_time", "--rounds", "3"]),
    ("judge", ["bench.judge", "--n", "24", "--sizes", "8,16,24"]),
    # two adapters, as the demo serves (LoRA and GRASP)
    (
        "generation",
        ["bench.generation", "--prompts", "8", "--sizes", "2,4,8", "--n-adapters", "2"],
    ),
    (
        "generation_avx2",
        # one run each: float32 and bf16 are 1.5x apart on AVX2-only kernels, no close call
        [
            "bench.generation",
            "--avx2",
            "--hf-only",
            "--prompts",
            "8",
            "--sizes",
            "2,4,8",
            "--hf-repeats",
            "1",
        ],
    ),
    ("end_to_end", ["bench.end_to_end"]),
]
# run only when named (--only): a before / after check of a change already made, kept out of
# the 20-minute round; latest.md still lists its last result, marked as such
EXTRAS: list[tuple[str, list[str]]] = [
    ("vllm_start", ["bench.generation", "--start-check", "--prompts", "8"]),
    ("implicit_arm", ["bench.implicit_arm", "--rounds", "3"]),
]


def run(names: list[str]) -> dict[str, dict[str, Any]]:
    """Run the named benchmarks in order; each writes bench/results/<name>.json itself."""
    walls: dict[str, dict[str, Any]] = {}
    for name, args in BENCHMARKS + EXTRAS:
        if name not in names:
            continue
        print(f"== {name}: python -m {' '.join(args)}", flush=True)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, check=False)
        walls[name] = {"wall_s": time.perf_counter() - t, "exit": done.returncode}
        print(f"== {name}: {walls[name]['wall_s']:.0f} s, exit {done.returncode}", flush=True)
    return walls


def avx2_demo_estimate(results: dict[str, dict[str, Any]]) -> Target | None:
    """The demo on an AVX2-only CPU, estimated from this run: its training stage scaled by the
    emulated-AVX2 LoRA step ratio, its generation by the emulated-AVX2 transformers float32
    tokens/s ratio, the rest as measured."""
    try:
        stages = results["end_to_end"]["seconds"]
        train_ratio = results["throughput"]["avx2_over_native"]
        native = results["generation"]["runs"]["hf/float32"]["lora_tokens_per_s"]
        emulated = results["generation_avx2"]["runs"]["hf/float32"]["lora_tokens_per_s"]
    except (KeyError, TypeError):
        return None
    if not (train_ratio and native and emulated):
        return None
    gen_ratio = native / emulated
    rest = sum(v for k, v in stages.items() if k not in ("train", "generate"))
    seconds = stages["train"] * train_ratio + stages["generate"] * gen_ratio + rest
    return Target(
        "demo on an AVX2-only CPU, estimated (minutes)",
        seconds / 60,
        10.0,
        higher_is_better=False,
        unit="min",
        note=f"training x{train_ratio:.2f}, generation x{gen_ratio:.2f} (emulated AVX2 kernels)",
    )


def report(walls: dict[str, dict[str, Any]], results_dir: Path = RESULTS) -> str:
    """latest.md from every result file of this round (and the walls just measured)."""
    results = {}
    for name, _ in BENCHMARKS + EXTRAS:
        path = results_dir / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    m = machine()
    extras = {n for n, _ in EXTRAS}
    total = sum(w["wall_s"] for n, w in walls.items() if n not in extras)

    def label(name: str) -> str:
        if name in extras:
            return f"extra ({name}, run by `--only {name}`): "
        return "AVX2 (emulated): " if name.endswith("_avx2") else ""

    targets = [
        {**t, "name": label(name) + t["name"]}
        for name, r in results.items()
        for t in r.get("targets", [])
    ]
    avx2 = avx2_demo_estimate(results)
    if avx2 is not None:
        targets.append(avx2.row())
    if walls:
        targets.append(
            Target(
                "every benchmark, one command (minutes)",
                total / 60,
                20.0,
                higher_is_better=False,
                unit="min",
            ).row()
        )
    met = sum(t["met"] is True for t in targets)
    lines = [
        "# Benchmarks: where a run's time goes",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, native bf16: {m['cpu_native_bf16']}."
        " Every ratio is measured within one run of one benchmark, on this machine;"
        " `python -m bench.run_all` (or `make bench`) reproduces all of it.",
        "",
        f"Targets: {met} of {len(targets)} met.",
        "",
        *targets_table(targets),
        "",
    ]
    if walls:
        lines += [
            "Wall time per benchmark: "
            + ", ".join(f"{k} {w['wall_s']:.0f} s" for k, w in walls.items())
            + f"; the round (extras not counted) {total / 60:.1f} min.",
            "",
        ]
        failed = [k for k, w in walls.items() if w["exit"]]
        if failed:
            lines += [f"**Failed:** {', '.join(failed)} (see their output).", ""]
    for name in results:
        md = results_dir / f"{name}.md"
        if md.exists():
            body = md.read_text().strip().splitlines()
            lines += ["#" + body[0], *body[1:], ""]  # each benchmark one heading level down
    latest = {"machine": m, "walls": walls, "targets": targets}
    atomic_write_json(results_dir / "latest.json", latest)
    text = "\n".join(lines) + "\n"
    atomic_write_text(results_dir / "latest.md", text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--only",
        default=",".join(n for n, _ in BENCHMARKS),
        help="Comma-separated names; extras: " + ", ".join(n for n, _ in EXTRAS),
    )
    ap.add_argument("--report", action="store_true", help="Only rebuild latest.md.")
    a = ap.parse_args()
    names = a.only.split(",")
    known = [n for n, _ in BENCHMARKS + EXTRAS]
    unknown = set(names) - set(known)
    if unknown:
        sys.exit(f"error: unknown benchmark(s) {sorted(unknown)}; known: " + ", ".join(known))
    previous = RESULTS / "latest.json"
    walls = json.loads(previous.read_text())["walls"] if previous.exists() else {}
    fresh = {} if a.report else run(names)
    walls = {n: fresh.get(n) or walls[n] for n in known if n in fresh or n in walls}
    print(report(walls))
    print(f"wrote {RESULTS / 'latest.md'}")
    if any(w["exit"] for w in fresh.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
