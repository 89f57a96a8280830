"""What removes an implicit factor (issue #26): each GRASP arm's removal, direction source and
k, its transfer and task fit against plain LoRA and the task-only control, and how close the
directions it used are to the teacher's two truths.

The reduction is read against the effect that exists: (lora - arm) / (lora - lora_control)
transfer, 1 = down to the control's level, 0 = no better than plain LoRA, each difference paired
with lora on the seeds both have. Task cost is the arm's held-out KL over plain LoRA's (the
issue's bar: within 10%). General change is ``base_fit`` (the student's log p of the base
model's own answers, per token, against the base model's): a reduction above 1 with a
``base_fit`` well below plain LoRA's is damage, not removal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from grasp_bench.core.rundir import RunDir, target_name
from grasp_bench.core.store import atomic_write_bytes, atomic_write_text
from grasp_bench.studies.implicit_archive import (
    ARM,
    RECORD,
    REMOVAL_ARCHIVE,
    is_archive,
    measurements,
    write_archive,
)
from grasp_bench.studies.implicit_report import CONTROL, REFERENCE, summarise

TRUTHS = {"change": "change.safetensors", "v": "direction.safetensors"}
GRASP_REMOVALS = ("both", "writers", "readers", "residual_grad", "preserve")


def _truth_source(directions_file: str) -> str:
    name = Path(directions_file).name
    return "truth:" + next((t for t, f in TRUTHS.items() if f == name), name)


def _baseline_arm(card: dict[str, Any]) -> dict[str, Any]:
    """A baseline of item 5: its method is the removal; its directions (activation baselines)
    come from the card's provenance, so an oracle arm and a label-free one read apart."""
    cfg, method = card["config"], card["method"]
    if method == "lora_kl":
        return {"removal": method, "source": "none", "k": 0, "weight": cfg.get("kl_weight")}
    prov = (card.get("before_training") or card).get("directions", {})  # derived: top level
    kind = prov.get("kind", cfg.get("direction", "unknown"))
    source = _truth_source(prov["file"]) if kind == "file" else kind
    return {"removal": method, "source": source, "k": prov.get("k", 1), "weight": None}


def arm_of(card: dict[str, Any] | None) -> dict[str, Any]:
    """removal / source / k / weight of one method card ('none' for base, lora and the
    control; the method's name for a baseline)."""
    if card is None or card["method"] in ("base", "lora", "lora_control"):
        source = "none" if card is None else card["method"]
        return {"removal": "none", "source": source, "k": 0, "weight": None}
    if card["method"] != "grasp":
        return _baseline_arm(card)
    cfg = card["config"]
    source = cfg.get("reading", "svd")
    if cfg.get("directions_file"):
        source = _truth_source(cfg["directions_file"])
    elif source == "activation_change":
        source = "naive-change"
    weight = cfg.get("preserve_weight") or (1.0 if cfg["project"] == "preserve" else None)
    return {"removal": cfg["project"], "source": source, "k": cfg.get("k", 1), "weight": weight,
            "scope": cfg.get("scope", "per_layer")}  # fmt: skip


def _card(run: Path, method: str, seed: int) -> dict[str, Any] | None:
    path = RunDir(run).method_card(target_name(method, seed))
    return json.loads(path.read_text()) if path.exists() else None


def _experiment(run: Path) -> dict[str, Any]:
    """The experiment as the run's report recorded it."""
    return json.loads((run / "report" / "results.json").read_text())["meta"]["experiment"]


def _teacher_folder(task: str) -> Path:
    """The committed folder of an implicit task's teacher (its truths and scale)."""
    from grasp_bench.data.tasks import tasks_dir

    return tasks_dir() / "grasp_implicit" / task.removeprefix("implicit-")


def _task_folder(run: Path) -> Path:
    return _teacher_folder(_experiment(run)["task"])


def overlap(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Span overlap (mean squared principal cosine, 1 = same span) and |cos| of the first
    directions of two orthonormal bases."""
    cos = torch.linalg.svdvals(a.double().T @ b.double()).clamp(max=1.0)
    first = float((a[:, 0].double() @ b[:, 0].double()).abs())
    return {"span_overlap": float((cos**2).mean()), "abs_cos_first": first}


def readings_against_truths(run: Path, arms: pd.DataFrame) -> pd.DataFrame:
    """Per GRASP arm, seed, truth and layer: the directions it used against the truth (the
    truth's first k columns, k the arm's)."""
    from grasp_bench.model.directions import load_directions

    folder = _task_folder(run)
    truths = {t: load_directions(folder / f) for t, f in TRUTHS.items() if (folder / f).exists()}
    rows = []
    for arm in arms[arms.removal != "none"].itertuples():
        path = RunDir(run).directions(target_name(arm.method, arm.seed))
        if not path.exists():
            continue
        used = load_directions(path)
        for truth, dirs in truths.items():
            for layer in sorted(set(used) & set(dirs)):
                k = min(used[layer].shape[1], dirs[layer].shape[1])
                rows.append({"method": arm.method, "seed": arm.seed, "truth": truth,
                             "layer": layer, "k": k,
                             **overlap(used[layer][:, :k], dirs[layer][:, :k])})  # fmt: skip
    return pd.DataFrame(rows)


def _arm_of_target(run: Path, method: str, seed: int) -> dict[str, Any]:
    return arm_of(_card(run, method, seed))


def _readings(inputs: list[Path], frame: pd.DataFrame) -> pd.DataFrame:
    """Directions against truths: measured from a run folder's saved directions; for an
    archive, the rows of the ``readings.csv`` its report wrote beside it."""
    readings = []
    archived = set(frame.run) - {Path(p).name for p in inputs if not is_archive(p)}
    for path in map(Path, inputs):
        if is_archive(path):
            sibling = path.parent / "readings.csv"
            runs = archived  # the runs an archive brought (run folders name their own)
            if sibling.exists() and sibling.stat().st_size > 1:
                got = pd.read_csv(sibling)
                readings.append(got[got.run.isin(runs)])
            continue
        arms = frame[frame.run == path.name][["method", "seed", "removal"]].drop_duplicates()
        got = readings_against_truths(path, arms)
        if not got.empty:
            got.insert(0, "run", path.name)
            readings.append(got)
    if not readings:
        return pd.DataFrame()
    # one order whatever order the runs' targets were found in, so a rerun writes the same bytes
    return pd.concat(readings, ignore_index=True).sort_values(
        ["run", "method", "seed", "truth", "layer"], kind="stable", ignore_index=True
    )


def removal_table(
    inputs: list[Path], n_boot: int = 2000, frame: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(arm table, readings-vs-truth table) for runs of one or more teachers; an input is a run
    folder or a report's ``*-measurements.csv.gz``."""
    frame = measurements(inputs, _arm_of_target) if frame is None else frame
    df = frame[RECORD]
    levels = ["teacher", "seed", "prompt_id"] if df.teacher.nunique() > 1 else ["seed", "prompt_id"]
    table = summarise(df, levels, n_boot)
    wide = table.pivot_table(index="method", columns="metric", values=["mean", "lo", "hi"])
    wide.columns = [f"{m}_{s}" for s, m in wide.columns]
    arm_meta = frame.drop_duplicates("method").set_index("method")[ARM]
    arm_meta = arm_meta.astype({"k": int}).replace({float("nan"): None})
    out = wide.join(arm_meta, how="left")
    vs = table[table.metric == "transfer"].set_index("method")
    out["transfer_vs_lora"] = vs.get("vs_lora")
    out["transfer_vs_lora_lo"] = vs.get("vs_lora_lo")
    out["transfer_vs_lora_hi"] = vs.get("vs_lora_hi")
    # paired with lora on shared seeds, so an arm run at fewer seeds is read against its own
    out["reduction"] = -out["transfer_vs_lora"] / -out.loc[CONTROL, "transfer_vs_lora"]
    out.loc[REFERENCE, "reduction"] = 0.0
    out["task_kl_vs_lora"] = out["task_kl_mean"] / out.loc[REFERENCE, "task_kl_mean"]
    out["n_seeds"] = df.groupby("method").seed.nunique()
    return out.reset_index(), _readings(inputs, frame)


def _ci(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _base_fit(row: Any) -> str:
    mean = getattr(row, "base_fit_mean", float("nan"))
    if pd.isna(mean):
        return "n/a"  # measured before the metric existed
    return f"{mean:+.3f} [{row.base_fit_lo:+.3f}, {row.base_fit_hi:+.3f}]"


def teacher_base_fits(frame: pd.DataFrame) -> dict[str, float]:
    """Each teacher's own base fit over its runs' unrelated prompts (where kept)."""
    from grasp_bench.studies.implicit import teacher_base_fit

    out = {}
    for task, n in frame[["task", "n_eval_drift"]].drop_duplicates().itertuples(index=False):
        folder = _teacher_folder(task)
        fit = teacher_base_fit(folder, None if pd.isna(n) else int(n))
        if fit is not None:
            out[folder.name] = fit
    return out


def markdown(
    table: pd.DataFrame,
    readings: pd.DataFrame,
    title: str,
    scales: dict[str, float] | None = None,
    teachers: int = 1,
) -> str:
    lines = [f"# {title}", ""]
    levels = "teacher, then seed, then prompt" if teachers > 1 else "seed then prompt"
    lines += [
        "Reduction = (lora - arm) / (lora - lora_control) transfer: 1 is the task-only control's"
        " level, 0 plain LoRA's. Task KL ratio = arm / lora held-out KL (the bar: at most 1.10)."
        f" Intervals: hierarchical bootstrap over {levels} (2,000 draws); an arm at 2 seeds"
        " shows the prompts' spread more than the runs'.",
        "",
        "Base fit: the student's log p of the base model's own answers to the unrelated"
        " prompts minus the base model's, nats per token (0 = unchanged; far below plain LoRA's"
        " = general change, so a reduction above 1 there is damage, not removal)."
        + (
            " The teacher's own base fit, for scale: "
            + ", ".join(f"{t} {v:+.3f}" for t, v in sorted(scales.items()))
            + "."
            if scales
            else ""
        ),
        "",
        "| arm | removal | directions | k | transfer [95% CI] | Δ vs lora [95% CI] |"
        " reduction | task KL | task KL / lora | base fit [95% CI] | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.sort_values(["removal", "source", "k"]).itertuples():
        delta = (
            "—"
            if pd.isna(r.transfer_vs_lora)
            else _ci(r.transfer_vs_lora, r.transfer_vs_lora_lo, r.transfer_vs_lora_hi)
        )
        lines.append(
            f"| {r.method} | {r.removal} | {r.source} | {r.k or '—'} |"
            f" {r.transfer_mean:.3f} [{r.transfer_lo:.3f}, {r.transfer_hi:.3f}] | {delta} |"
            f" {r.reduction:.2f} | {r.task_kl_mean:.4f} | {r.task_kl_vs_lora:.2f} |"
            f" {_base_fit(r)} | {r.n_seeds} |"
        )
    if not readings.empty:
        lines += ["", "## Directions used, against the truths (mean over layers and seeds)", ""]
        agg = readings.groupby(["method", "truth"])[["span_overlap", "abs_cos_first"]].mean()
        lines += ["| arm | truth | span overlap | abs cos (first) |", "|---|---|---|---|"]
        for (method, truth), r in agg.iterrows():
            lines.append(f"| {method} | {truth} | {r.span_overlap:.3f} | {r.abs_cos_first:.3f} |")
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame) -> bytes:
    """Transfer and task KL against k, one line per (removal, directions); plain LoRA and the
    control as horizontal lines."""
    from grasp_bench.core.figures import png_bytes, pyplot

    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    # GRASP's removals against k; the baselines (another method each) are rows of the table
    arms = table[table.removal.isin(GRASP_REMOVALS) & (table.k > 0)]
    for ax, metric in zip(axes, ("transfer", "task_kl"), strict=True):
        for (removal, source, weight), part in arms.fillna({"weight": 0}).groupby(
            ["removal", "source", "weight"]
        ):
            part = part.sort_values("k")
            err = [part[f"{metric}_mean"] - part[f"{metric}_lo"],
                   part[f"{metric}_hi"] - part[f"{metric}_mean"]]  # fmt: skip
            label = f"{removal} / {source}" + (f" w{weight:g}" if weight else "")
            ax.errorbar(part.k, part[f"{metric}_mean"], yerr=err, marker="o", capsize=3,
                        label=label)  # fmt: skip
        for ref, style in ((REFERENCE, "--"), (CONTROL, ":"), ("base", "-.")):
            row = table[table.method == ref]
            if not row.empty:
                ax.axhline(float(row[f"{metric}_mean"].iloc[0]), linestyle=style, color="grey",
                           linewidth=1, label=ref)  # fmt: skip
        ax.set_xscale("log", base=2)
        if metric == "task_kl":
            ax.set_yscale("log")  # plain LoRA's fit and the base model's differ tenfold
        ax.set_xlabel("k (directions per layer)")
        ax.set_title(metric + (" (0 = base, 1 = teacher)" if metric == "transfer" else ""))
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def write_removal_report(inputs: list[Path], out_dir: Path, n_boot: int = 2000) -> dict[str, Path]:
    """removal.{csv,md,png}, readings.csv and the measurements they came from (``REMOVAL_ARCHIVE``,
    which a later report takes in place of the runs) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = measurements(inputs, _arm_of_target)
    table, readings = removal_table(inputs, n_boot, frame)
    names = ", ".join(dict.fromkeys(frame.run))
    scales = teacher_base_fits(frame)
    paths = {k: out_dir / f"removal.{k}" for k in ("csv", "md", "png")}
    paths["readings"] = out_dir / "readings.csv"
    paths["measurements"] = out_dir / REMOVAL_ARCHIVE
    atomic_write_text(paths["csv"], table.to_csv(index=False))
    atomic_write_text(paths["readings"], readings.to_csv(index=False))
    title = f"Removal study: {names}"
    atomic_write_text(
        paths["md"], markdown(table, readings, title, scales, frame.teacher.nunique())
    )
    atomic_write_bytes(paths["png"], plot(table))
    write_archive(frame, paths["measurements"])
    return paths
