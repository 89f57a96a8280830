"""Judges turn completions into scores; every score carries the identity of its judge."""

from grasp_bench.evaluate.judge.base import (
    Judge,
    JudgeItem,
    Score,
    get_judge_class,
    judge_name,
    register_judge,
    registered_judges,
)

__all__ = [
    "Judge",
    "JudgeItem",
    "Score",
    "get_judge_class",
    "judge_name",
    "register_judge",
    "registered_judges",
]
