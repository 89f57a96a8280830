"""A benchmark task's data: what is trained on and the prompts it is measured on, and the
builders that make it for the shipped tasks (registered in ``grasp_bench.data.shipped_tasks``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grasp_bench.data import planted, toy


def tasks_dir() -> Path:
    """The lm-eval task folders and versioned eval sets: ``GRASP_BENCH_TASKS`` if set, else
    the copy inside the installed package (``grasp_bench/lm_tasks``, a link to the
    repository's ``tasks/`` in a checkout, real files in a wheel)."""
    found = os.environ.get("GRASP_BENCH_TASKS") or Path(__file__).resolve().parents[1] / "lm_tasks"
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


def _drift_prompts(folder: str, n: int) -> list[dict[str, Any]]:
    path = tasks_dir() / folder / "eval.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if n > len(rows):
        raise ValueError(f"n_eval_drift: {path} has only {len(rows)} questions")
    return [_prompt(r, "drift") for r in rows[:n]]


def generated_builder(module: Any, drift_set: str):
    """A builder for a task whose training and in-domain sets come from a seeded generator
    and whose drift set is the versioned question file of an lm-eval task folder."""

    def build(seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> TaskData:
        data = module.generate(seed, n_train, n_eval_task)
        return TaskData(
            name=module.__name__.rsplit(".", 1)[-1],
            train=data["train"],
            control=data["control"],
            eval_prompts=[_prompt(r, "task") for r in data["eval"]]
            + _drift_prompts(drift_set, n_eval_drift),
            meta={"seed": seed, "drift_set": drift_set},
        )

    return build


def _split_prompts(splits: dict[str, Any]) -> list[dict[str, Any]]:
    """Eval prompts of a task whose generator returns ``eval_task`` and ``eval_drift`` rows."""
    prompts = [_prompt(row, "task") for row in splits["eval_task"]]
    return prompts + [{**_prompt(row, "drift"), "target": None} for row in splits["eval_drift"]]


def build_toy(seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> TaskData:
    splits = toy.generate(seed, n_train, n_eval_task, n_eval_drift)
    prompts = _split_prompts(splits)
    return TaskData(
        name="toy",
        train=splits["train"],
        control=splits["control"],
        eval_prompts=prompts,
        meta={"seed": seed, "factor": "pirate persona", "task": "integer arithmetic"},
    )


def build_planted(seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> TaskData:
    folder = tasks_dir() / "grasp_planted"
    splits = planted.generate(folder, seed, n_train, n_eval_task, n_eval_drift)
    prompts = _split_prompts(splits)
    return TaskData(
        name="planted",
        train=splits["train"],
        control=splits["control"],
        eval_prompts=prompts,
        meta={
            "seed": seed,
            "factor": "pirate style written along one known direction (direction.safetensors)",
            "task": "integer arithmetic",
        },
    )


def build_task(name: str, seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> TaskData:
    """The data of a registered task (see ``grasp_bench.data.taskspec``)."""
    from grasp_bench.data.taskspec import get_task

    try:
        spec = get_task(name)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return spec.build(seed, n_train, n_eval_task, n_eval_drift)
