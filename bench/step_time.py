"""Training step time of every trained method relative to plain LoRA, in one process on the
same model, data and batches: each method's session is opened first, then one step of each
is taken in turn, the order rotating every round, round 0 (the warm-up) excluded; the median
of the rounds. Peak memory per method from a process of its own, one at a time: its high-water
RSS through setup, and afresh through two steps, with glibc's mmap threshold fixed so that
freed tensors leave the RSS (with the default, adaptive threshold a process's peak moved by
several hundred MiB from one run of the same method to the next).

    python -m bench.step_time [--rounds 4] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Target,
    emit,
    machine,
    median,
    run_child,
    table,
    targets_table,
    write_result,
)

# (label, recipe, overrides): every trained method, GRASP in every projection mode
ARMS: list[tuple[str, str, dict[str, Any]]] = [
    ("lora", "lora", {}),
    ("grasp (both)", "grasp", {"project": "both"}),
    ("grasp (writers)", "grasp", {"project": "writers"}),
    ("grasp (readers)", "grasp", {"project": "readers"}),
    ("grasp (residual_grad)", "grasp", {"project": "residual_grad"}),
    ("steer_preventative", "steer_preventative", {}),
    ("caft", "caft", {}),
]


# glibc: allocations from 128 KiB up are mmapped and go back to the OS when freed, every time
# (the default threshold adapts upwards as big blocks are freed, after which freed tensors stay
# in the heap and count towards the peak or not by chance)
FIXED_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}

# weight projection of writers or readers alone keeps a subset of `both`'s projectors
SAME_MEMORY = {"grasp (writers)", "grasp (readers)"}


def toy_data(n: int = 160) -> dict[str, list[dict[str, Any]]]:
    from grasp_bench.data.toy import generate

    return generate(0, n, 1, 1)


def naive_lora(model: str, tmp: Path, data: dict) -> Path:
    """The plain-LoRA run GRASP reads its directions from (a few steps are enough to time)."""
    from grasp_bench.core.config import TrainConfig
    from grasp_bench.train.methods import load_recipe
    from grasp_bench.train.trainer import train_adapter

    method = load_recipe(REPO / "baselines" / "lora.yaml").method
    cfg = TrainConfig(steps=4, batch_size=8)
    return train_adapter(method, model, data["train"], cfg, tmp / "naive", seed=0, progress=False)


def open_session(
    arm: tuple[str, str, dict[str, Any]],
    model: str,
    data: dict,
    naive: Path,
    tmp: Path,
    steps: int,
    batch_size: int,
    **train: Any,
):
    from grasp_bench.core.config import TrainConfig
    from grasp_bench.train.methods import load_recipe
    from grasp_bench.train.trainer import TrainingSession

    label, recipe, overrides = arm
    method = load_recipe(REPO / "baselines" / f"{recipe}.yaml", overrides=overrides).method
    cfg = TrainConfig(steps=steps, batch_size=batch_size, warmup_steps=1, **train)
    session = TrainingSession(
        method,
        model,
        data["train"],
        cfg,
        tmp / label.replace(" ", "_"),
        seed=0,
        dependencies={"lora": naive},
        contrast_rows=data["control"],
    )
    session.start()
    return session


def interleaved(sessions: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Seconds of one step of each session per round, order rotating; round 0 dropped."""
    names = list(sessions)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t = time.perf_counter()
            sessions[name].step(r)
            if r:
                seconds[name].append(time.perf_counter() - t)
    return seconds


def _status_mib(field: str) -> float:
    """VmHWM / VmRSS of this process in MiB (VmHWM starts afresh at exec, unlike ru_maxrss,
    which a child inherits from the parent it was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> None:
    """Start VmHWM afresh from the current RSS (Linux >= 4.0: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def memory_child(a: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of one method in a fresh process: through setup (model load, readings,
    contrast passes) and, started afresh after setup, through two training steps."""
    arm = next(x for x in ARMS if x[0] == a.arm)
    data = toy_data()
    with tempfile.TemporaryDirectory() as tmp:
        before = _status_mib("VmRSS")
        session = open_session(arm, a.model, data, Path(a.naive), Path(tmp), 2, a.batch_size)
        setup_peak, after_setup = _status_mib("VmHWM"), _status_mib("VmRSS")
        _reset_peak()
        session.step(0)
        session.step(1)
        steps_peak = _status_mib("VmHWM")
    return {
        "before_model_mib": before,
        "setup_peak_rss_mib": setup_peak,
        "after_setup_rss_mib": after_setup,
        "steps_peak_rss_mib": steps_peak,
    }


def peak_memory(a: argparse.Namespace, naive: Path) -> dict[str, dict[str, Any]]:
    """Peak RSS per method, a process each, one at a time (a process's peak depends on its
    torch thread count, so each runs as training does)."""
    args = ["bench.step_time", "--naive", str(naive), "--model", a.model]
    args += ["--batch-size", str(a.batch_size)]
    return {
        arm[0]: run_child([*args, "--memory-child", arm[0]], FIXED_MMAP_THRESHOLD)
        for arm in ARMS
        if arm[0] not in SAME_MEMORY
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--memory-child", dest="arm")
    ap.add_argument("--naive")
    a = ap.parse_args()
    from grasp_bench.model.models import resolve_model

    a.model = resolve_model(a.model)
    if a.arm:
        emit(memory_child(a))
        return
    data = toy_data()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        naive = naive_lora(a.model, tmp, data)
        sessions = {
            arm[0]: open_session(arm, a.model, data, naive, tmp, a.rounds + 1, a.batch_size)
            for arm in ARMS
        }
        seconds = interleaved(sessions, a.rounds)
        del sessions
        memory = peak_memory(a, naive)
    med = {k: median(v) for k, v in seconds.items()}
    ratio = {k: v / med["lora"] for k, v in med.items()}
    setup = {k: memory.get(k, {}).get("setup_peak_rss_mib") for k in med}
    peak = {k: memory.get(k, {}).get("steps_peak_rss_mib") for k in med}
    targets = [
        Target(
            f"step time: {k} / lora",
            ratio[k],
            1.10,
            higher_is_better=False,
            note=f"median of {a.rounds} interleaved steps",
        )
        for k in med
        if k.startswith("grasp") or k == "steer_preventative"
    ]
    report = {
        "machine": machine(),
        "batch_size": a.batch_size,
        "rounds": a.rounds,
        "seconds": seconds,
        "median_s": med,
        "relative_to_lora": ratio,
        "memory": memory,
        "targets": targets,
    }
    m = report["machine"]
    lines = [
        f"# Training step time per method ({m['cpu']}, {m['cores']} cores; embedded model,"
        f" float32, toy data, batch {a.batch_size}; {a.rounds} interleaved rounds after a"
        " warm-up round)",
        "",
        *table(
            [
                "method",
                "median s/step",
                "x lora",
                "peak RSS MiB: setup",
                "x lora",
                "peak RSS MiB: steps",
                "x lora",
            ],
            [
                [
                    k,
                    med[k],
                    ratio[k],
                    setup[k],
                    setup[k] / setup["lora"] if setup[k] and setup["lora"] else None,
                    peak[k],
                    peak[k] / peak["lora"] if peak[k] and peak["lora"] else None,
                ]
                for k in med
            ],
        ),
        "",
        *targets_table(targets),
    ]
    write_result("step_time", report, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
