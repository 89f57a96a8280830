"""How much a task's training data really holds: distinct targets, distinct templates, the
near-duplicate rate and eval/train overlap (``grasp-bench tasks --stats``).

A generator that draws 6,000 rows from 16 distinct answers trains on 16 examples, however many
rows it writes; these numbers say so before anyone reads a result off it. A template is a
target with its numbers masked and its whitespace and case folded; a near duplicate is a
target whose template another target shares.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACE = re.compile(r"\s+")


def _last(messages: list[dict[str, Any]], role: str) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == role), "")


def template(text: str) -> str:
    return _SPACE.sub(" ", _NUMBER.sub("#", text)).strip().lower()


def data_stats(train: list[dict[str, Any]], eval_prompts: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows, distinct targets (and the share of rows repeating one), distinct templates, the
    near-duplicate rate among distinct targets, distinct prompts, and the share of task-split
    eval prompts whose question is also a training question."""
    targets = [_last(r["messages"], "assistant") for r in train]
    prompts = [_last(r["messages"], "user") for r in train]
    distinct = set(targets)
    shapes = Counter(template(t) for t in distinct)
    task_eval = [_last(p["messages"], "user") for p in eval_prompts if p.get("split") == "task"]
    seen = set(prompts)
    return {
        "rows": len(train),
        "distinct targets": len(distinct),
        "repeated rows": 1 - len(distinct) / max(len(targets), 1),
        "distinct templates": len(shapes),
        # distinct targets that differ from another only in numbers, case or spacing
        "near-duplicate rate": sum(n for n in shapes.values() if n > 1) / max(len(distinct), 1),
        "distinct prompts": len(seen),
        "eval/train overlap": sum(q in seen for q in task_eval) / max(len(task_eval), 1),
    }


def build_largest(name: str, n_train: int) -> tuple[Any, int]:
    """The task's generated data at ``n_train`` rows, or at the most its generator allows (a
    generator refuses to repeat requests; its error says how many it has)."""
    from grasp_bench.data.tasks import build_task

    for _ in range(6):
        try:
            return build_task(name, 0, n_train, 20, 20), n_train
        except ValueError as exc:
            found = re.search(r"only (\d+)", str(exc))
            if not found and "ran out" not in str(exc):
                raise
            # the generator's own count where it gives one, else half as many (it ran out)
            n_train = int(found.group(1)) if found else n_train // 2
    raise ValueError(f"{name}: no size the generator accepts")
