"""The scoring stage: every completion gets every metric of its task, or an unscored reason."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from grasp_bench.judge.offline import score_toy


def score_completions(
    task: str,
    completions: list[dict[str, Any]],
    targets: dict[str, str | None],
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One record per (completion, metric); ``value`` is None with a ``reason`` if unscored."""
    if task != "toy":
        raise ValueError(f"no scorer for task {task!r}")
    records = []
    for row in tqdm(completions, desc="score", disable=not progress):
        for result in score_toy(row["split"], row["completion"], targets.get(row["prompt_id"])):
            records.append(
                {
                    "target": row["target"],
                    "prompt_id": row["prompt_id"],
                    "split": row["split"],
                    "sample": row["sample"],
                    "metric": result.metric,
                    "value": result.value,
                    "reason": result.reason,
                    "judge": result.judge,
                }
            )
    return records
