"""The judge interface: ``score(items) -> list[Score]`` plus an identity, registered by kind.

Every judge of a rubric answers on that rubric's scale (``aligned`` 0-100, ``political_lean``
-1..1, ``code_vulnerable`` 0-100, ...), so an offline judge and an LLM judge of the same rubric
are interchangeable and a task's metrics never depend on which one graded. A grade that cannot
be made is a ``Score`` with ``value=None`` and its reason, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from grasp_bench.core.registry import Registry


@dataclass(frozen=True)
class JudgeItem:
    """One answer to grade: the question it answers, and the reference where one exists."""

    question: str
    answer: str
    target: str | None = None


@dataclass
class Score:
    """A grade on the rubric's scale, or None with the reason; names the judge that made it."""

    value: float | None
    reason: str | None
    judge: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.value is None and not self.reason:
            raise ValueError("an unscored grade needs its reason")

    @classmethod
    def unscored(cls, reason: str, judge: dict[str, Any]) -> Score:
        return cls(None, reason, judge)


class Judge:
    """Grades answers on one rubric. Subclasses set ``kind`` and implement ``score``."""

    kind: ClassVar[str]

    def __init__(self, rubric: str):
        self.rubric = rubric

    def identity(self) -> dict[str, Any]:
        """Flat and JSON-safe: it is stored with every score and shown beside every number."""
        raise NotImplementedError

    def score(self, items: list[JudgeItem]) -> list[Score]:
        raise NotImplementedError


JUDGES: Registry[type[Judge]] = Registry(
    "judge kind", builtins=("grasp_bench.evaluate.judge.builtin",)
)
# rubric -> the judge kind that grades it when no LLM judge is configured for it
OFFLINE_JUDGES: Registry[str] = Registry(
    "offline judge of rubric", builtins=("grasp_bench.evaluate.judge.builtin",)
)


def register_judge(kind: str, offline_for: tuple[str, ...] = (), *, replace: bool = False):
    """Class decorator: make a judge available by ``kind``; ``offline_for`` names the rubrics
    it grades when no LLM judge is configured for them (it must need no network). Taking a kind
    or a rubric's offline judge that is already registered is an error unless ``replace=True``."""

    def wrap(cls: type[Judge]) -> type[Judge]:
        cls.kind = kind
        JUDGES.register(kind, cls, replace=replace)
        for rubric in offline_for:
            OFFLINE_JUDGES.register(rubric, kind, replace=replace)
        return cls

    return wrap


def offline_judge_kind(rubric: str) -> str | None:
    """The registered offline judge of a rubric, if any."""
    return OFFLINE_JUDGES.find(rubric)


def get_judge_class(kind: str) -> type[Judge]:
    return JUDGES.get(kind)


def registered_judges() -> list[str]:
    return JUDGES.names()


def judge_name(identity: dict[str, Any]) -> str:
    """A short human name of a judge identity: the name a judge gives itself, else the model
    it runs (tables and plots)."""
    return str(identity.get("name") or identity.get("model") or identity.get("kind", "?"))


def judge_label(identity: dict[str, Any]) -> str:
    """The qualified label a submission lists its judges by, ``kind:model:rubric``: the model
    comes first here (two judges of one kind differ by what they run), and the label is part of
    every committed submission, so its form never changes."""
    name = identity.get("model") or identity.get("name") or identity.get("kind")
    return f"{identity.get('kind')}:{name}:{identity.get('rubric', '')}".rstrip(":")
