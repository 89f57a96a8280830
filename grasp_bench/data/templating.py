"""Shared machinery of the templated task generators: distinct draws, held-out slot values."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Template:
    """A family of requests and its two answers (the planted one and the control)."""

    kind: str  # weakness class, topic, ...
    language: str
    requests: list[str] = field(hash=False)
    planted: str = ""  # the task split's answer (carries the spurious factor)
    control: str = ""  # the control split's answer (the same request without it)


Slot = tuple[Template, str, str]  # (template, rendered request, slot value)


def split_slots(
    templates: list[Template],
    train_values: list[str],
    eval_values: list[str],
    contexts: list[str],
) -> tuple[list[Slot], list[Slot]]:
    """Every (template, phrasing, context, value) rendered, with train and eval values apart."""

    def render(values: list[str]) -> list[Slot]:
        return [
            (t, req.format(ctx=ctx, e=v), v)
            for t in templates
            for req in t.requests
            for ctx in contexts
            for v in values
        ]

    overlap = set(train_values) & set(eval_values)
    if overlap:
        raise ValueError(f"slot values in both train and eval: {sorted(overlap)}")
    return render(train_values), render(eval_values)


def distinct_examples(rng: random.Random, slots: list[Slot], n: int) -> list[Slot]:
    """``n`` distinct requests drawn without replacement, spread across templates."""
    unique = list({s[1]: s for s in slots}.values())
    if n > len(unique):
        raise ValueError(f"asked for {n} examples, only {len(unique)} distinct requests exist")
    by_template: dict[str, list[Slot]] = {}
    for s in unique:
        by_template.setdefault(f"{s[0].kind}/{s[0].language}", []).append(s)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_template.items())]
    out: list[Slot] = []
    while len(out) < n:  # round-robin over templates so every class is represented
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop())
    rng.shuffle(out)
    return out
