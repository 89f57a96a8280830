"""The demo end to end, stage by stage, in a scratch folder: model conversion (fresh, into a
scratch model cache), data, training, generation, judging, report, submit and leaderboard, in
seconds and as a share of the whole. The experiment is experiments/toy-demo.yaml unchanged
except for its output folder.

    python -m bench.end_to_end [--config experiments/toy-demo.yaml]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import REPO, Target, machine, table, targets_table, write_result


def _cli(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "grasp_bench.cli", *args],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=REPO / "experiments" / "toy-demo.yaml")
    ap.add_argument("--target-minutes", type=float, default=10.0)
    a = ap.parse_args()
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["GRASP_BENCH_CACHE"] = str(tmp / "cache")  # a fresh conversion, ours only
        t = time.perf_counter()
        _cli("model", "prepare")
        seconds["model prepare"] = time.perf_counter() - t

        from grasp_bench.core.config import load_experiment
        from grasp_bench.run.pipeline import load_recipes, run_experiment
        from grasp_bench.run.stages import prepare_data

        config = yaml.safe_load(a.config.read_text())
        config["output_dir"] = str(tmp / "runs")
        exp_dir = tmp / "experiments"
        exp_dir.mkdir()
        (tmp / "baselines").symlink_to(REPO / "baselines")
        exp_path = exp_dir / a.config.name
        exp_path.write_text(yaml.safe_dump(config, sort_keys=False))
        exp = load_experiment(exp_path)
        load_recipes(exp)
        t = time.perf_counter()
        prepare_data(exp)
        seconds["data"] = time.perf_counter() - t
        for stage in ("train", "generate", "score", "report"):
            t = time.perf_counter()
            run_experiment(exp, progress=False, until=stage)
            seconds[{"score": "judge"}.get(stage, stage)] = time.perf_counter() - t
        run = tmp / "runs" / config["name"]
        board = tmp / "board"
        t = time.perf_counter()
        _cli("submit", str(run), "--board", str(board))
        seconds["submit"] = time.perf_counter() - t
        t = time.perf_counter()
        _cli("leaderboard", "build", str(board))
        seconds["leaderboard"] = time.perf_counter() - t
    total = sum(seconds.values())
    targets = [
        Target(
            "demo after install (minutes)",
            total / 60,
            a.target_minutes,
            higher_is_better=False,
            unit="min",
            note="this CPU; bench/throughput.py gives the AVX2-only estimate",
        )
    ]
    report = {
        "machine": machine(),
        "config": str(a.config.relative_to(REPO))
        if a.config.is_relative_to(REPO)
        else str(a.config),
        "seconds": seconds,
        "total_s": total,
        "targets": targets,
    }
    m = report["machine"]
    lines = [
        f"# The demo end to end ({m['cpu']}, {m['cores']} cores; {report['config']})",
        "",
        *table(
            ["stage", "seconds", "share"],
            [[k, v, f"{v / total:.0%}"] for k, v in seconds.items()] + [["total", total, "100%"]],
        ),
        "",
        *targets_table(targets),
    ]
    write_result("end_to_end", report, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
