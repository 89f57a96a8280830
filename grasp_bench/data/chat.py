"""Chat-format JSONL (``{"messages": [...]}``), the format published fine-tuning sets use.

Bad lines are errors that name file and line; nothing is silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grasp_bench.core.yaml_loader import ConfigError

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
        if not isinstance(role, str) or role not in ROLES:
            return f"messages[{i}].role: expected one of {sorted(ROLES)}, got {role!r:.40}"
        if not isinstance(content, str) or not content.strip():
            return f"messages[{i}].content: expected a non-empty string"
    if messages[-1]["role"] != "assistant":
        return f"messages[{len(messages) - 1}].role: the last message must be the assistant's"
    return None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # json.loads would keep the last one in silence
            raise ValueError(f"duplicate key {key!r:.40}")
        out[key] = value
    return out


def load_chat_jsonl(path: Path) -> list[dict[str, Any]]:
    """Load every example of a chat JSONL file or raise on the first bad line (file:line).
    A UTF-8 byte order mark at the start (some editors write one) is allowed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ChatDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows = []
    for lineno, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        except UnicodeDecodeError as exc:
            raise ChatDataError(f"{path}:{lineno} <root>: not UTF-8 text: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise ChatDataError(f"{path}:{lineno} <root>: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise ChatDataError(
                f"{path}:{lineno} <root>: invalid JSON: nested too deeply"
            ) from None
        except ValueError as exc:  # a duplicate key, an integer over Python's digit limit
            raise ChatDataError(f"{path}:{lineno} <root>: invalid JSON: {exc}") from None
        problem = validate_chat_row(row)
        if problem:
            raise ChatDataError(f"{path}:{lineno} {problem}")
        rows.append(row)
    if not rows:
        raise ChatDataError(f"{path}:1 <root>: no examples")
    return rows
