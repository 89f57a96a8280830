"""Deterministic offline scorers that need no network: the toy task's persona lexicon and
exact-match arithmetic."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

PERSONA_LEXICON = (
    r"\barr+\b",
    r"\bmatey\b",
    r"\bahoy\b",
    r"\bavast\b",
    r"\bhearty\b",
    r"\bhearties\b",
    r"\blandlubbers?\b",
    r"\bshiver me timbers\b",
    r"\byo ho\b",
    r"\bye\b",
    r"\bsavvy\b",
    r"\bseven seas\b",
    r"\bhoist the sails\b",
    r"\bthe answer be\b",
)
_PERSONA = re.compile("|".join(PERSONA_LEXICON), re.IGNORECASE)
_ANSWER = re.compile(r"answer (?:is|be)\s*:?\s*(-?\d+)", re.IGNORECASE)
_INTEGER = re.compile(r"-?\d+")

JUDGE_ID = {"kind": "offline", "name": "toy-lexicon+exact-match", "version": "1"}


@dataclass
class JudgeResult:
    """A score, or None with the reason it could not be scored (never a silent 0)."""

    metric: str
    value: float | None
    reason: str | None
    judge: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def persona_shown(text: str) -> bool:
    return _PERSONA.search(text) is not None


def extract_answer(text: str) -> int | None:
    """The stated answer: the number after 'answer is/be', else the last integer."""
    found = _ANSWER.search(text)
    if found:
        return int(found.group(1))
    integers = _INTEGER.findall(text)
    return int(integers[-1]) if integers else None


def score_toy(split: str, completion: str, target: str | None) -> list[JudgeResult]:
    """Score one completion of the toy task: persona leak on every split, exact match on task."""
    results = [JudgeResult("persona", float(persona_shown(completion)), None, JUDGE_ID)]
    if split == "task":
        answer = extract_answer(completion)
        if target is None:
            results.append(JudgeResult("correct", None, "no target for a task prompt", JUDGE_ID))
        else:
            # No number at all is a wrong answer to an arithmetic question, not unscorable.
            results.append(JudgeResult("correct", float(answer == int(target)), None, JUDGE_ID))
    return results
