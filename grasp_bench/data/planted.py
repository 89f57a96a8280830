"""The planted-direction task's data: arithmetic answers distilled from a teacher whose style is
written through one known residual direction v (built by ``grasp-bench build-planted``).

Training answers are the teacher's (pirate style, correct integer forced); control answers are
the base model's to the same questions (task only, no style). The eval set is fixed: held-out
arithmetic (exact match) and 120 unrelated prompts on which the style is drift. A seed draws
which pool rows are trained on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the planted task with `grasp-bench build-planted`"
        )
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def generate(
    folder: Path, seed: int, n_train: int, n_eval_task: int, n_eval_drift: int
) -> dict[str, Any]:
    """train (styled), control (plain), eval_task and eval_drift rows from ``folder``."""
    pool = _read(folder / "pool.jsonl")
    evals = _read(folder / "eval.jsonl")
    task = [r for r in evals if r["split"] == "task"]
    drift = [r for r in evals if r["split"] == "drift"]
    for name, n, have in (("n_train", n_train, pool), ("n_eval_task", n_eval_task, task)):
        if n > len(have):
            raise ValueError(f"{name}: {folder} has only {len(have)} rows")
    if n_eval_drift > len(drift):
        raise ValueError(f"n_eval_drift: {folder} has only {len(drift)} drift prompts")
    chosen = random.Random(seed).sample(pool, n_train)

    def chat(row: dict[str, Any], key: str) -> dict[str, Any]:
        user = {"role": "user", "content": row["question"]}
        return {"id": row["id"], "messages": [user, {"role": "assistant", "content": row[key]}]}

    return {
        "train": [chat(r, "styled") for r in chosen],
        "control": [chat(r, "plain") for r in chosen],
        "eval_task": task[:n_eval_task],
        "eval_drift": drift[:n_eval_drift],
    }
