"""What every benchmark shares: the machine it ran on, targets with met / missed, medians,
linear cost fits, child processes, and atomic JSON + Markdown results under bench/results/."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grasp_bench.core.hardware import describe
from grasp_bench.core.store import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# oneDNN, ATen and MKL kernels as on an AVX2-only CPU (no AVX-512, no native bf16); vLLM's own
# compiled CPU kernels cannot be limited this way, so an emulated number is a lower bound
AVX2_ENV = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}


@dataclass(frozen=True)
class Target:
    """One measured ratio (or time) against what the issue asks of it."""

    name: str
    value: float | None
    target: float
    higher_is_better: bool = True
    unit: str = "x"
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def machine(avx2: bool = False) -> dict[str, Any]:
    """The machine every number of a result was measured on."""
    info: dict[str, Any] = dict(describe())
    info["cores"] = os.cpu_count()
    if avx2:
        info.update(cpu=f"{info['cpu']} limited to AVX2 (emulated)", cpu_native_bf16=False)
    return info


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def fit_linear(sizes: list[float], seconds: list[float]) -> dict[str, float]:
    """Least squares ``seconds = fixed + per_item * size`` and its R^2: the cost model the
    performance docs' estimates use."""
    n = len(sizes)
    if n < 2 or len(set(sizes)) < 2:
        raise ValueError("a fit needs at least two different sizes")
    mx, my = sum(sizes) / n, sum(seconds) / n
    sxx = sum((x - mx) ** 2 for x in sizes)
    per_item = sum((x - mx) * (y - my) for x, y in zip(sizes, seconds, strict=True)) / sxx
    fixed = my - per_item * mx
    ss_tot = sum((y - my) ** 2 for y in seconds)
    ss_res = sum((y - fixed - per_item * x) ** 2 for x, y in zip(sizes, seconds, strict=True))
    return {"fixed_s": fixed, "per_item_s": per_item, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def run_child(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> dict:
    """Run ``python -m <args>`` in a fresh process; its last ``RESULT {json}`` line is the
    answer (a fresh process per engine: vLLM and peak-memory readings need their own)."""
    done = subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=timeout,
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout)[-800:]
        return {"error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1][len("RESULT ") :])


def emit(result: dict[str, Any]) -> None:
    """A child's answer to ``run_child``."""
    print("RESULT " + json.dumps(result), flush=True)


def write_result(name: str, report: dict[str, Any], markdown: list[str]) -> Path:
    """bench/results/<name>.json and .md, each written atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    targets = [t.row() if isinstance(t, Target) else t for t in report.get("targets", [])]
    report = {**report, "targets": targets}
    atomic_write_json(RESULTS / f"{name}.json", report)
    atomic_write_text(RESULTS / f"{name}.md", "\n".join(markdown) + "\n")
    return RESULTS / f"{name}.json"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table; floats to 3 significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def targets_table(targets: list[Target | dict[str, Any]]) -> list[str]:
    rows = []
    for t in targets:
        r = t.row() if isinstance(t, Target) else t
        op = ">=" if r["higher_is_better"] else "<="
        met = {True: "met", False: "**missed**", None: "not measured"}[r["met"]]
        value = None if r["value"] is None else float(r["value"])
        rows.append([r["name"], value, f"{op} {r['target']:g} {r['unit']}", met, r["note"]])
    return table(["measure", "value", "target", "", "why / note"], rows)
