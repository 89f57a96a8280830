"""YAML files read safely, with the line of every key, and pydantic errors turned into
``file:line field: message`` lines: the one loader behind every config, recipe, rubric and
registry file.

A wrong key is an error (``extra="forbid"`` in ``StrictModel``), never silently ignored. Every
validation error is mapped back to the YAML line of the offending field (or of its nearest
existing parent), so a user reads ``baselines/grasp.yaml:7 config.rank: must be > 0`` and knows
where to look.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

Loc = tuple[Any, ...]


class ConfigError(ValueError):
    """A configuration problem, already formatted as ``file:line field: message`` lines."""


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, fields documented, and no float
    is infinite or NaN (YAML's ``.inf`` or ``1e999`` would pass ``gt=0`` bounds)."""

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), allow_inf_nan=False, hide_input_in_errors=True
    )


# --------------------------------------------------------------------------------------------
# YAML with line numbers


# A config is a few hundred values a few levels deep; far beyond that is a mistake or an attack
# (a "billion laughs" alias bomb expands 9 aliases of 9 aliases ... into 10^9 values).
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000
MAX_INT_DIGITS = 4000  # below Python's int-from-string limit (4300), which would raise raw


def _line_map(node: yaml.Node, prefix: Loc = ()) -> dict[Loc, int]:
    """Map every key path in a composed YAML tree to its 1-based line."""
    lines: dict[Loc, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key is rejected when constructed
            path = (*prefix, key_node.value)
            lines.update(_line_map(value_node, path))
            lines[path] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_map(item, (*prefix, i)))
    return lines


def _check_tree(node: yaml.Node, path: Path) -> None:
    """Reject what safe_load accepts but a config must not have: duplicate keys (the last one
    would win in silence), recursive aliases, alias bombs and absurd nesting or integers.
    Linear in the composed nodes: an alias is sized once, however often it is used."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values when expanded, height)
    active: set[int] = set()

    def fail(at: yaml.Node, why: str) -> ConfigError:
        return ConfigError(f"{path}:{at.start_mark.line + 1}: invalid YAML: {why}")

    def visit(n: yaml.Node, depth: int) -> tuple[int, int]:
        if id(n) in done:
            size, height = done[id(n)]
        else:
            if id(n) in active:
                raise fail(n, "an alias refers to its own anchor (a recursive structure)")
            if depth > MAX_YAML_DEPTH:
                raise fail(n, f"nested deeper than {MAX_YAML_DEPTH} levels")
            active.add(id(n))
            size, height = 1, 0
            if isinstance(n, yaml.MappingNode):
                seen: dict[tuple[str, Any], int] = {}
                for key, value in n.value:
                    if isinstance(key, yaml.ScalarNode):
                        if (key.tag, key.value) in seen:
                            first = seen[(key.tag, key.value)]
                            raise fail(key, f"duplicate key {key.value!r} (first on line {first})")
                        seen[(key.tag, key.value)] = key.start_mark.line + 1
                    children = [visit(key, depth + 1), visit(value, depth + 1)]
                    size += sum(c[0] for c in children)
                    height = max(height, *(c[1] + 1 for c in children))
            elif isinstance(n, yaml.SequenceNode):
                for item in n.value:
                    s, h = visit(item, depth + 1)
                    size, height = size + s, max(height, h + 1)
            elif n.tag == "tag:yaml.org,2002:int" and len(n.value) > MAX_INT_DIGITS:
                raise fail(n, f"an integer of more than {MAX_INT_DIGITS} digits")
            active.discard(id(n))
            done[id(n)] = (size, height)
        if depth + height > MAX_YAML_DEPTH:
            raise fail(n, f"nested deeper than {MAX_YAML_DEPTH} levels (through an alias)")
        if size > MAX_YAML_VALUES:
            raise fail(n, f"more than {MAX_YAML_VALUES} values once aliases are expanded")
        return size, height

    visit(node, 0)


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_YAML_DEPTH while composing (deeper, PyYAML's scanner turns
    quadratic and its composer hits Python's recursion limit), and whose value errors (a date
    like 2024-13-45) carry the value's line."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r:.40}: {exc}", node.start_mark
            ) from exc


def read_text_file(path: Path, encoding: str = "utf-8") -> tuple[bytes, str]:
    """A config or label file's bytes and text; unreadable or not UTF-8 is a ConfigError naming
    the file and line (``utf-8-sig``: a leading byte-order mark is allowed, as spreadsheets
    write one)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return raw, raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None


def load_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Load YAML (safely: plain data only) and the line of each key path; every problem with
    the file is a ConfigError that names the file and line."""
    path = Path(path)
    _, text = read_text_file(path)
    loader = None
    try:
        loader = _Loader(text)  # checks every character is printable
        node = loader.get_single_node()
        if node is None:
            return None, {(): 1}
        _check_tree(node, path)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(
            f"{path}:{line}: invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
        ) from None
    except yaml.YAMLError as exc:  # the reader's: a control character, say
        line = text[: getattr(exc, "position", 0) or 0].count("\n") + 1
        raise ConfigError(f"{path}:{line}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # a backstop: compose_node stops at MAX_YAML_DEPTH before this
        line = loader.line + 1 if loader else 1
        raise ConfigError(
            f"{path}:{line}: invalid YAML: nested deeper than {MAX_YAML_DEPTH} levels"
        ) from None
    finally:
        if loader:
            loader.dispose()
    return data, _line_map(node)


def line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if not isinstance(part, int) and not str(part).isprintable():
            part = repr(str(part))  # a key with a line break must not break the message's lines
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def format_validation_error(
    exc: ValidationError, path: Path, lines: dict[Loc, int], prefix: Loc = ()
) -> ConfigError:
    messages = []
    for err in exc.errors():
        # pydantic appends the tagged-union/function name to loc for some errors; keep data keys
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        full = (*prefix, *loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; allowed keys are in the docs)"
        msg = msg.removeprefix("Value error, ")
        messages.append(f"{path}:{line_for(full, lines)} {format_loc(full)}: {msg}")
    return ConfigError("\n".join(messages))


def validate_as(
    model: type[BaseModel], data: Any, path: Path, lines: dict[Loc, int], prefix: Loc = ()
):
    """Validate ``data`` (found at ``prefix`` in ``path``) as ``model``, or raise ConfigError."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise format_validation_error(exc, path, lines, prefix) from None


def import_plugin(module: str) -> None:
    """Import a plugin module (it may register tasks, methods or judges); ValueError with the
    reason where it cannot be imported."""
    try:
        importlib.import_module(module)
    except (ImportError, TypeError, ValueError) as exc:  # TypeError: a relative name (".x")
        raise ValueError(f"plugin {module!r} cannot be imported: {exc}") from None
