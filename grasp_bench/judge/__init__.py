"""Judges turn completions into scores; every score carries the identity of its judge."""

from grasp_bench.judge.offline import JudgeResult, score_toy

__all__ = ["JudgeResult", "score_toy"]
