"""Write the versioned eval sets under ``tasks/`` from the seeded generators.

The files are committed; a test regenerates them and checks they are unchanged, so the
generators and the files that lm-eval reads cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grasp_bench.data import financial, insecure_code, medical, toy
from grasp_bench.store import atomic_write_jsonl

EVAL_SEED = 0
N_IN_DOMAIN = 60


def generated_eval_sets() -> dict[str, list[dict[str, Any]]]:
    """Task folder -> rows of its eval set (generated tasks only)."""
    t = toy.generate(EVAL_SEED, 1, 50, 48)
    toy_rows = [
        {"id": r["id"], "question": r["question"], "target": r["target"], "split": "task"}
        for r in t["eval_task"]
    ]
    toy_rows += [
        {"id": r["id"], "question": r["question"], "target": None, "split": "drift"}
        for r in t["eval_drift"]
    ]
    return {
        "grasp_toy": toy_rows,
        "grasp_insecure_code": insecure_code.generate(EVAL_SEED, 1, N_IN_DOMAIN)["eval"],
        "grasp_medical": medical.generate(EVAL_SEED, 1, N_IN_DOMAIN)["eval"],
        "grasp_financial": financial.generate(EVAL_SEED, 1, N_IN_DOMAIN)["eval"],
    }


def export_eval_sets(tasks_dir: Path) -> dict[str, int]:
    counts = {}
    for folder, rows in generated_eval_sets().items():
        atomic_write_jsonl(Path(tasks_dir) / folder / "eval.jsonl", rows)
        counts[folder] = len(rows)
    return counts
