"""A benchmark task's data: what is trained on and the prompts it is measured on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grasp_bench.data import toy


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


def build_task(name: str, seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> TaskData:
    if name != "toy":
        raise ValueError(f"unknown task {name!r}; available: ['toy']")
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
