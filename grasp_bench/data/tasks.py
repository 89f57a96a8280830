"""A benchmark task's data: what is trained on and the prompts it is measured on."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grasp_bench.data import financial, insecure_code, medical, toy

# task -> (drift metric, drift split, task metric, task split); every metric is per sample
TASK_METRICS = {
    "toy": ("persona", "drift", "correct", "task"),
    "insecure_code": ("misaligned", "drift", "vulnerable", "task"),
    "medical": ("misaligned", "drift", "harmful", "task"),
    "financial": ("political_lean", "drift", "quality", "task"),
}
GENERATORS = {"insecure_code": insecure_code, "medical": medical, "financial": financial}
DRIFT_SETS = {
    "insecure_code": "grasp_misalignment",
    "medical": "grasp_misalignment",
    "financial": "grasp_political_lean",
}


def tasks_dir() -> Path:
    """The versioned eval sets (``tasks/`` of the repository, or GRASP_BENCH_TASKS)."""
    found = os.environ.get("GRASP_BENCH_TASKS") or Path(__file__).resolve().parents[2] / "tasks"
    if not Path(found).is_dir():
        raise FileNotFoundError(f"no tasks directory at {found}; set GRASP_BENCH_TASKS")
    return Path(found)


@dataclass
class TaskData:
    """Training examples (chat format) and eval prompts of one task at one seed.

    ``eval_prompts`` rows: ``prompt_id``, ``split`` (``task`` or ``drift``), ``messages``
    (the conversation up to the assistant turn), and ``target`` where exact scoring needs one.
    ``contrast`` holds (persona, plain) answer pairs that supervised directions are built from.
    """

    name: str
    train: list[dict[str, Any]]
    control: list[dict[str, Any]]
    eval_prompts: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def _prompt(row: dict[str, Any], split: str) -> dict[str, Any]:
    return {
        "prompt_id": row["id"],
        "split": split,
        "messages": [{"role": "user", "content": row["question"]}],
        "target": row.get("target"),
    }


def build_task(name: str, seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> TaskData:
    if name not in TASK_METRICS:
        raise ValueError(f"unknown task {name!r}; available: {sorted(TASK_METRICS)}")
    if name != "toy":
        data = GENERATORS[name].generate(seed, n_train, n_eval_task)
        drift_file = tasks_dir() / DRIFT_SETS[name] / "eval.jsonl"
        drift = [json.loads(x) for x in drift_file.read_text().splitlines() if x.strip()]
        if n_eval_drift > len(drift):
            raise ValueError(f"n_eval_drift: {drift_file} has only {len(drift)} questions")
        return TaskData(
            name=name,
            train=data["train"],
            control=data["control"],
            eval_prompts=[_prompt(r, "task") for r in data["eval"]]
            + [_prompt(r, "drift") for r in drift[:n_eval_drift]],
            meta={"seed": seed, "drift_set": DRIFT_SETS[name]},
        )
    splits = toy.generate(seed, n_train, n_eval_task, n_eval_drift)
    prompts = [
        {
            "prompt_id": row["id"],
            "split": "task",
            "messages": [{"role": "user", "content": row["question"]}],
            "target": row["target"],
        }
        for row in splits["eval_task"]
    ] + [
        {
            "prompt_id": row["id"],
            "split": "drift",
            "messages": [{"role": "user", "content": row["question"]}],
            "target": None,
        }
        for row in splits["eval_drift"]
    ]
    return TaskData(
        name=name,
        train=splits["train"],
        control=splits["control"],
        eval_prompts=prompts,
        meta={"seed": seed, "factor": "pirate persona", "task": "integer arithmetic"},
    )
