"""Seed-level results of the implicit-factor task: hierarchical intervals and the effect gate.

The unit of replication is the training run. Every headline is a hierarchical bootstrap
(teacher, then seed, then prompt; within one run: seed, then prompt) and every comparison a
paired difference against plain LoRA matched at every level. Before any method is compared,
the gate asks whether plain LoRA acquires more of the teacher than the task-only control
(``lora_control``): the paired transfer difference's interval must exclude 0. When it does not,
the report says so and ranks nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from grasp_bench.core.stats import (
    hierarchical_bootstrap,
    min_detectable_difference,
    paired_hierarchical_difference,
)
from grasp_bench.core.store import atomic_write_bytes, atomic_write_text
from grasp_bench.studies.implicit_archive import IMPLICIT_METRICS, records_frame

METRICS = IMPLICIT_METRICS
SPLIT_OF = {"transfer": "drift", "trait_mass": "drift", "shift": "drift", "task_kl": "task",
            "base_fit": "drift"}  # fmt: skip
REFERENCE, CONTROL = "lora", "lora_control"
MIN_GATE_RUNS = 3  # seeds per teacher: fewer cannot show that the effect replicates across runs


def gate(df: pd.DataFrame, levels: list[str], n_boot: int = 2000) -> dict[str, Any]:
    """Does plain LoRA's transfer exceed the task-only control's? (paired, hierarchical)"""
    t = df[df.metric == "transfer"]
    a, b = t[t.method == REFERENCE], t[t.method == CONTROL]
    if a.empty or b.empty:
        return {"passed": False, "verdict": f"no gate: the run needs {REFERENCE} and {CONTROL}"}
    d = paired_hierarchical_difference(a, b, levels, n_boot=n_boot)
    runs = d.n.get("seed", 0)
    if runs < MIN_GATE_RUNS * max(1, d.n.get("teacher", 1)):
        return {
            "passed": False,
            "verdict": f"not enough training runs for the gate: {runs} paired seed(s) (n {d.n}),"
            f" at least {MIN_GATE_RUNS} per teacher needed; methods are not ranked"
            f" (lora - lora_control transfer {d.mean:.3f} [{d.lo:.3f}, {d.hi:.3f}], prompts only)",
            **d.to_dict(),
        }
    passed = d.lo > 0
    verdict = (
        f"effect present: {REFERENCE} transfer exceeds {CONTROL}'s by {d.mean:.3f}"
        f" [{d.lo:.3f}, {d.hi:.3f}] (n {d.n}); methods are compared"
        if passed
        else f"NO EFFECT: {REFERENCE} - {CONTROL} transfer {d.mean:.3f} [{d.lo:.3f}, {d.hi:.3f}]"
        f" (n {d.n}) does not exclude 0; methods are not ranked"
    )
    return {"passed": bool(passed), "verdict": verdict, **d.to_dict()}


def summarise(df: pd.DataFrame, levels: list[str], n_boot: int = 2000) -> pd.DataFrame:
    """One row per method and metric: the bootstrap mean and interval with n per level, and
    the paired difference against lora (and base) with its interval."""
    rows = []
    methods = list(dict.fromkeys(df["method"]))
    for method in methods:
        for metric in METRICS:
            part = df[(df.method == method) & (df.metric == metric)]
            if part.empty:
                continue
            est = hierarchical_bootstrap(part, levels, n_boot=n_boot)
            row = {"method": method, "metric": metric, "mean": est.mean, "lo": est.lo,
                   "hi": est.hi, **{f"n_{k}": v for k, v in est.n.items()}}  # fmt: skip
            for ref in (REFERENCE, "base"):
                other = df[(df.method == ref) & (df.metric == metric)]
                if ref == method or other.empty:
                    continue
                d = paired_hierarchical_difference(part, other, levels, n_boot=n_boot)
                row[f"vs_{ref}"], row[f"vs_{ref}_lo"], row[f"vs_{ref}_hi"] = d.mean, d.lo, d.hi
                if ref == REFERENCE:
                    row["mdd_vs_lora"] = min_detectable_difference((d.hi - d.lo) / 2)
            rows.append(row)
    return pd.DataFrame(rows)


def _fmt(m: float, lo: float, hi: float) -> str:
    return "n/a" if pd.isna(m) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(table: pd.DataFrame, verdict: dict[str, Any], title: str, levels: list[str]) -> str:
    """The gate first, then each metric's table (ranked columns only when the gate passed)."""
    lines = [f"# {title}", "", f"**Effect gate:** {verdict['verdict']}", ""]
    lines.append(
        f"Hierarchical bootstrap over {' > '.join(levels)} (2,000 draws, 95% percentile"
        " intervals); paired differences are matched at every level."
    )
    for metric in METRICS:
        part = table[table.metric == metric]
        if part.empty:
            continue
        lines += ["", f"## {metric}", ""]
        head = ["method", "mean [95% CI]", *[f"n {lv}" for lv in levels]]
        if verdict["passed"]:
            head += ["Δ vs lora [95% CI]", "MDD vs lora"]
        head += ["Δ vs base [95% CI]"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in part.itertuples():
            cells = [r.method, _fmt(r.mean, r.lo, r.hi)]
            cells += [str(getattr(r, f"n_{lv}")) for lv in levels]
            if verdict["passed"]:
                has = hasattr(r, "vs_lora") and not pd.isna(getattr(r, "vs_lora", float("nan")))
                cells += [
                    _fmt(r.vs_lora, r.vs_lora_lo, r.vs_lora_hi) if has else "—",
                    f"{r.mdd_vs_lora:.3f}" if has else "—",
                ]
            has_b = hasattr(r, "vs_base") and not pd.isna(getattr(r, "vs_base", float("nan")))
            cells += [_fmt(r.vs_base, r.vs_base_lo, r.vs_base_hi) if has_b else "—"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_seed_report(run: Any, records: list[dict[str, Any]], targets: list[dict[str, Any]]):
    """A run's seed-level table (seed, then prompt) with the gate: report/seed_level.*"""
    snapshot = json.loads(run.results.read_text())["meta"]["experiment"]
    df = records_frame(records, targets, snapshot["task"])
    levels = ["seed", "prompt_id"]
    verdict = gate(df, levels)
    table = summarise(df, levels)
    paths = {"seed_csv": run.report / "seed_level.csv", "seed_md": run.report / "seed_level.md"}
    atomic_write_text(paths["seed_csv"], table.to_csv(index=False))
    title = f"{snapshot['name']}: seed-level results ({snapshot['task']})"
    atomic_write_text(paths["seed_md"], markdown(table, verdict, title, levels))
    atomic_write_text(run.report / "gate.json", json.dumps(verdict, indent=2) + "\n")
    return paths


def collect(inputs: list[Path]) -> pd.DataFrame:
    """Every input's records (run folders or ``*-measurements.csv.gz`` files, in any mix), with
    the archive's run, task and arm columns."""
    from grasp_bench.studies.implicit_archive import measurements

    return measurements(inputs, lambda run, method, seed: {})


def cross_report(inputs: list[Path], out_dir: Path, n_boot: int = 2000) -> dict[str, Path]:
    """The pooled report over teachers (teacher, seed, prompt) and one section per teacher;
    CSV, JSON, Markdown, a plot of transfer and task fit per method, and the measurements."""
    from grasp_bench.studies.implicit_archive import IMPLICIT_ARCHIVE, write_archive

    frame = collect(inputs)
    paths = write_cross_report(frame[["teacher", "method", "seed", "prompt_id", "metric",
                                      "value"]], out_dir, n_boot)  # fmt: skip
    paths["measurements"] = write_archive(frame, Path(out_dir) / IMPLICIT_ARCHIVE)
    return paths


def write_cross_report(df: pd.DataFrame, out_dir: Path, n_boot: int = 2000) -> dict[str, Path]:
    """``cross_report`` on collected records (teacher, method, seed, prompt_id, metric, value)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    levels = ["teacher", "seed", "prompt_id"]
    verdict = gate(df, levels, n_boot)
    pooled = summarise(df, levels, n_boot)
    pooled.insert(0, "teacher", "pooled")
    parts, gates, md = [pooled], {"pooled": verdict}, []
    teachers = sorted(df.teacher.unique())
    for teacher in teachers:
        sub = df[df.teacher == teacher]
        g = gate(sub, levels[1:], n_boot)
        gates[teacher] = g
        t = summarise(sub, levels[1:], n_boot)
        t.insert(0, "teacher", teacher)
        parts.append(t)
        text = markdown(t, g, f"Teacher {teacher}", levels[1:]).replace("\n## ", "\n### ")
        md.append(text.replace("# ", "## ", 1))
    table = pd.concat(parts, ignore_index=True)
    head = markdown(
        pooled, verdict, "Implicit-factor positive control: pooled over teachers", levels
    )
    text = head + "\n" + "\n".join(md)
    paths = {
        "csv": out_dir / "implicit.csv",
        "json": out_dir / "implicit.json",
        "md": out_dir / "implicit.md",
        "png": out_dir / "implicit.png",
    }
    atomic_write_text(paths["csv"], table.to_csv(index=False))
    payload = {"gates": gates, "rows": json.loads(table.to_json(orient="records"))}
    atomic_write_text(paths["json"], json.dumps(payload, indent=2) + "\n")
    atomic_write_text(paths["md"], text)
    atomic_write_bytes(paths["png"], plot(table, teachers))
    return paths


def plot(table: pd.DataFrame, teachers: list[str]) -> bytes:
    """Transfer and held-out task KL per method, per teacher and pooled, with intervals."""
    from grasp_bench.core.figures import png_bytes, pyplot

    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = ["pooled", *teachers]
    for ax, metric in zip(axes, ("transfer", "task_kl"), strict=True):
        part = table[table.metric == metric]
        methods = list(dict.fromkeys(part.method))
        width = 0.8 / max(1, len(methods))
        for j, method in enumerate(methods):
            rows = [part[(part.teacher == g) & (part.method == method)] for g in groups]
            xs = [i + j * width for i, r in enumerate(rows) if not r.empty]
            ys = [float(r["mean"].iloc[0]) for r in rows if not r.empty]
            lo = [float(r["mean"].iloc[0] - r["lo"].iloc[0]) for r in rows if not r.empty]
            hi = [float(r["hi"].iloc[0] - r["mean"].iloc[0]) for r in rows if not r.empty]
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=method)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], groups, fontsize=8)
        ax.set_title(
            metric
            + (" (0 = base, 1 = teacher)" if metric == "transfer" else " (lower: fits the teacher)")
        )
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)
