"""Judge canaries: a few fixed answers per rubric, graded at the start of every LLM-judge run
and compared with the same judge's first grades of them.

An LLM judge's grades can move under a user without any change on their side: an API model
updated behind the same name, another prompt template, another server. The first run of a judge
identity records its canary grades as the baseline (in the judge cache's folder); every later
run compares and names each canary that moved more than ``TOLERANCE`` of the rubric's scale, or
that became unscored. The outcome is stored with the run and shown where its numbers are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from grasp_bench.core.store import atomic_write_json
from grasp_bench.evaluate.judge.base import Judge, JudgeItem

TOLERANCE = 0.10  # of the rubric's scale


@dataclass
class CanaryCheck:
    rubric: str
    judge: dict[str, Any]
    status: str  # "baseline recorded", "stable" or "drifted"
    grades: list[float | None]
    baseline: list[float | None]
    moved: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def line(self) -> str:
        text = f"{self.rubric}: canaries {self.status}"
        return text + (f" ({'; '.join(self.moved)})" if self.moved else "")


def canaries(rubric: str) -> list[dict[str, Any]]:
    """The rubric's canary answers (empty where the project ships none)."""
    path = resources.files("grasp_bench.evaluate.judge").joinpath("canaries", f"{rubric}.yaml")
    return yaml.safe_load(path.read_text()) if path.is_file() else []


def check(
    judge: Judge, rubric: str, baseline_dir: Path, scale: tuple[float, float]
) -> CanaryCheck | None:
    """Grade the rubric's canaries with ``judge`` and compare with its baseline (recorded now if
    this judge identity has none). None where the rubric has no canaries."""
    items = canaries(rubric)
    if not items:
        return None
    identity = judge.identity()
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(baseline_dir) / f"canary-{rubric}-{key}.json"
    scores = judge.score([JudgeItem(i["question"], i["answer"], None) for i in items])
    grades = [s.value for s in scores]
    if not path.exists():
        atomic_write_json(path, {"judge": identity, "rubric": rubric, "grades": grades})
        return CanaryCheck(rubric, identity, "baseline recorded", grades, grades)
    baseline = json.loads(path.read_text())["grades"]
    limit = TOLERANCE * (scale[1] - scale[0])
    moved = []
    for n, (now, then) in enumerate(zip(grades, baseline, strict=True)):
        if (now is None) != (then is None):
            moved.append(f"canary {n}: {'unscored' if now is None else 'scored'} now")
        elif now is not None and abs(now - then) > limit:
            moved.append(f"canary {n}: {then:g} -> {now:g}")
    return CanaryCheck(rubric, identity, "drifted" if moved else "stable", grades, baseline, moved)
