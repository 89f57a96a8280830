"""The toy task's deterministic checks: its persona lexicon and the stated integer answer (the
``lexicon`` and ``exact_match`` judges grade with them)."""

from __future__ import annotations

import re

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


def persona_shown(text: str) -> bool:
    return _PERSONA.search(text) is not None


def extract_answer(text: str) -> int | None:
    """The stated answer: the number after 'answer is/be', else the last integer."""
    found = _ANSWER.search(text)
    if found:
        return int(found.group(1))
    integers = _INTEGER.findall(text)
    return int(integers[-1]) if integers else None
