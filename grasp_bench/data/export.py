"""The generated eval sets of the lm-eval task folders, from the seeded generators.

A task's ``LmEvalTask.eval_rows`` names one of these; ``grasp-bench tasks export`` writes the
rows to the folder's ``eval.jsonl`` and ``--check`` (in ``make test``) fails when the committed
file and the generator differ, so what lm-eval reads cannot drift from the generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grasp_bench.data import toy

EVAL_SEED = 0
N_IN_DOMAIN = 60


def toy_eval_rows() -> list[dict[str, Any]]:
    """The toy's held-out arithmetic (with targets) and its unrelated prompts."""
    t = toy.generate(EVAL_SEED, 1, 50, 48)
    rows = [
        {"id": r["id"], "question": r["question"], "target": r["target"], "split": "task"}
        for r in t["eval_task"]
    ]
    return rows + [
        {"id": r["id"], "question": r["question"], "target": None, "split": "drift"}
        for r in t["eval_drift"]
    ]


def in_domain_rows(module: Any) -> Callable[[], list[dict[str, Any]]]:
    """The held-out in-domain set of a generated task (``module.generate(seed, 1, n)``)."""

    def rows() -> list[dict[str, Any]]:
        return module.generate(EVAL_SEED, 1, N_IN_DOMAIN)["eval"]

    return rows
