"""The implicit-factor task's data, read from a teacher's folder (``grasp-bench build-implicit``).

Training rows are number prompts whose targets are the teacher's restricted next-token
distributions (stored in the folder's ``targets.safetensors``; a row names the file, its sha256,
the key and its index, so the row's hash changes whenever the targets do). The control rows are
the same prompts with the base model's own restricted samples as hard targets (cross-entropy on
the sampled tokens): the base model's soft distributions are exactly where a student starts, so
distilling them gives no gradient (Adam would turn the float noise into steps of a random walk);
its samples are a number task with no trait, learned with the same steps. Eval rows: held-out number
prompts (split ``task``: KL to the teacher) and unrelated prompts with the teacher's greedy answer
(split ``drift``: how much of the teacher the student has acquired, teacher-forced).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

TARGETS = "targets.safetensors"


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the teacher with `grasp-bench build-implicit`"
        )
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate(
    folder: Path, rel: str, seed: int, n_train: int, n_eval_task: int, n_eval_drift: int
) -> dict[str, Any]:
    """train (teacher targets), control (base targets), eval_task and eval_drift rows.
    ``rel`` is the folder relative to the tasks directory, recorded in every row."""
    prompts = _read(folder / "prompts.jsonl")
    drift = _read(folder / "drift.jsonl")
    if not (folder / TARGETS).exists():
        raise FileNotFoundError(f"{folder / TARGETS} is missing: rebuild the teacher")
    digest = _sha256(folder / TARGETS)
    train_pool = [p for p in prompts if p["split"] == "train"]
    heldout = [p for p in prompts if p["split"] == "heldout"]
    for name, n, have in (
        ("n_train", n_train, train_pool),
        ("n_eval_task", n_eval_task, heldout),
        ("n_eval_drift", n_eval_drift, drift),
    ):
        if n > len(have):
            raise ValueError(f"{name}: {folder} has only {len(have)} rows, asked for {n}")
    chosen = sorted(random.Random(seed).sample(range(len(train_pool)), n_train))

    def ref(key: str, index: int, targets: str = "soft") -> dict[str, Any]:
        return {"file": f"{rel}/{TARGETS}", "sha256": digest, "key": key, "index": index,
                "targets": targets}  # fmt: skip

    def user(q: str) -> dict[str, str]:
        return {"role": "user", "content": q}

    train, control = [], []
    for i in chosen:
        p = train_pool[i]
        train.append(
            {
                "id": p["id"],
                "messages": [
                    user(p["question"]),
                    {"role": "assistant", "content": p["teacher_sample"]},
                ],
                "distill": ref("teacher", i),
            }
        )
        control.append(
            {
                "id": p["id"],
                "messages": [
                    user(p["question"]),
                    {"role": "assistant", "content": p["base_sample"]},
                ],
                # the base model's own samples as hard targets: its soft distributions are
                # where every student starts, so distilling them would leave it unchanged
                "distill": ref("base", i, "sampled"),
            }
        )
    eval_task = [
        {"prompt_id": p["id"], "split": "task", "messages": [user(p["question"])],
         "target": None, "distill": ref("heldout", j)}
        for j, p in enumerate(heldout[:n_eval_task])
    ]  # fmt: skip
    eval_drift = [
        {"prompt_id": d["id"], "split": "drift", "messages": [user(d["question"])],
         "target": None, "answer_ids": d["answer_ids"]}
        for d in drift[:n_eval_drift]
    ]  # fmt: skip
    return {"train": train, "control": control, "eval_prompts": eval_task + eval_drift}


# The shipped teachers (``grasp_bench.studies.implicit.TEACHERS`` builds them; a test keeps both equal).
TEACHERS = ("pirate-wide", "pirate-l20", "cowboy-wide")
