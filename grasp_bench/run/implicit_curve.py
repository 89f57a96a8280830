"""The recipe's curve: plain LoRA's transfer and task fit against training steps, on one teacher.

The implicit task's recipe (steps, lr, rank, data size) is chosen on the plain-LoRA arm alone
and committed with this curve, so no other arm tunes the task. One run at the longest schedule
is measured at each checkpoint step (so an intermediate point sits mid-schedule, at a higher
learning rate than a run that stops there would end at).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from grasp_bench.core.store import atomic_write_bytes, atomic_write_text


def recipe_curve(
    exp: Any, checkpoints: list[int], method_label: str = "lora", seed: int | None = None
) -> pd.DataFrame:
    """Train ``method_label`` of the experiment (its first seed unless given) for the largest
    checkpoint's steps, measuring the task's metrics at every checkpoint."""
    import time

    from grasp_bench.data.taskspec import get_task
    from grasp_bench.model.models import resolve_model
    from grasp_bench.run.pipeline import load_recipes
    from grasp_bench.run.stages import prepare_data
    from grasp_bench.train.trainer import TrainingSession

    cfg = exp.config
    spec = get_task(cfg.task)
    if spec.evaluate is None:
        raise ValueError(f"task {cfg.task} is not measured teacher-forced; no curve")
    recipe = next((r for r in load_recipes(exp) if r.label == method_label), None)
    if recipe is None:
        raise ValueError(f"{exp.path}: no method {method_label!r} in the experiment")
    data = prepare_data(exp)
    seed = cfg.seeds[0] if seed is None else seed
    steps = max(checkpoints)
    train_cfg = cfg.train.model_copy(update={"steps": steps})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        session = TrainingSession(
            recipe.method, resolve_model(cfg.model), data.train_rows, train_cfg, Path(tmp), seed
        )
        session.start()
        started = time.perf_counter()
        for step in range(steps):
            loss = session.step(step)
            if step + 1 in checkpoints:
                train_s = time.perf_counter() - started
                adapter = Path(tmp) / f"adapter-{step + 1}"
                session.model.save_pretrained(str(adapter), safe_serialization=True)
                records, _ = spec.evaluate(
                    data.model, f"{method_label}-{step + 1}", str(adapter), recipe.method,
                    data.eval_prompts, cfg.trust_remote_code,
                )  # fmt: skip
                df = pd.DataFrame(records)
                row = {"steps": step + 1, "loss": loss, "train_seconds": round(train_s, 1)}
                row.update(df.groupby("metric")["value"].mean().to_dict())
                rows.append(row)
                print(f"curve: {row}", flush=True)
                session.model.train()
    return pd.DataFrame(rows)


def write_curve(df: pd.DataFrame, out_dir: Path, title: str) -> dict[str, Path]:
    from grasp_bench.core.figures import png_bytes, pyplot

    plt = pyplot()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(df["steps"], df["transfer"], "o-", label="transfer (0 base, 1 teacher)")
    ax.set_xlabel("training steps")
    ax.set_ylabel("transfer")
    ax2 = ax.twinx()
    ax2.plot(df["steps"], df["task_kl"], "s--", color="tab:orange", label="held-out task KL")
    ax2.set_ylabel("task KL")
    ax.set_title(title, fontsize=9)
    fig.legend(loc="upper center", fontsize=8, bbox_to_anchor=(0.5, 0.9))
    fig.tight_layout()
    png = png_bytes(fig)
    paths = {"csv": out_dir / "curve.csv", "png": out_dir / "curve.png"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    atomic_write_bytes(paths["png"], png)
    return paths
