"""Chat-format JSONL (``{"messages": [...]}``), the format published fine-tuning sets use.

Bad lines are errors that name file and line; nothing is silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grasp_bench.config import ConfigError

ROLES = {"system", "user", "assistant"}


class ChatDataError(ConfigError):
    """A chat JSONL problem: ``file:line field: message``."""


def validate_chat_row(row: Any) -> str | None:
    """Return why ``row`` is not a chat example ending in an assistant turn, or None."""
    if not isinstance(row, dict):
        return "<root>: expected a JSON object"
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: expected a non-empty list"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return f"messages[{i}]: expected an object with role and content"
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            return f"messages[{i}].role: expected one of {sorted(ROLES)}, got {role!r}"
        if not isinstance(content, str) or not content.strip():
            return f"messages[{i}].content: expected a non-empty string"
    if messages[-1]["role"] != "assistant":
        return f"messages[{len(messages) - 1}].role: the last message must be the assistant's"
    return None


def load_chat_jsonl(path: Path) -> list[dict[str, Any]]:
    """Load every example of a chat JSONL file or raise on the first bad line (file:line)."""
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ChatDataError(f"{path}:{lineno} <root>: invalid JSON: {exc.msg}") from None
            problem = validate_chat_row(row)
            if problem:
                raise ChatDataError(f"{path}:{lineno} {problem}")
            rows.append(row)
    if not rows:
        raise ChatDataError(f"{path}:1 <root>: no examples")
    return rows
