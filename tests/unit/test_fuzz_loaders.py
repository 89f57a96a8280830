"""Fuzzed bad input for every loader of user files (hypothesis, 1,000 cases each).

Each case writes one generated bad file into a scratch folder, calls the loader, and checks its
answer: a ConfigError (what the CLI prints as ``error: ...`` with exit 2) whose every line starts
with ``<file>:<line>`` and names the field where there is one; no other exception type (no
KeyError, TypeError, UnicodeDecodeError, RecursionError, yaml error); nothing written beside the
input. The submission validator answers with a list of problems instead of raising; the same
holds for it. YAML edge cases: duplicate keys, recursive aliases and alias bombs (which must not
hang), tabs, huge numbers, wrong types, empty files, BOMs, bytes that are not UTF-8, deep
nesting, nulls, dangerous tags, several documents.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.core.config import load_experiment
from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.data.chat import load_chat_jsonl
from grasp_bench.data.em_questions import import_em_questions
from grasp_bench.data.taskspec import registered_tasks
from grasp_bench.evaluate.judge.rubric import load_rubric
from grasp_bench.leaderboard.schema import Summary
from grasp_bench.leaderboard.validate import MAX_FILE_BYTES, validate_submission
from grasp_bench.train.methods.base import registered_methods
from grasp_bench.train.methods.recipes import load_recipe

from ..conftest import REPO
from .test_leaderboard import make_submission

# 1,000 generated cases per loader; no example database (it would write .hypothesis/ here).
# Derandomized: CI runs the same 1,000 every time (a random draw once found a blank-line case in
# CI that no local run had, now a case of its own in test_leaderboard.py); to explore afresh,
# run with HYPOTHESIS_RANDOM=1.
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("HYPOTHESIS_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.timeout(240)  # an alias bomb that hangs fails instead of blocking CI

INF, NAN = math.inf, math.nan
SAFE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for every case of a test (a folder per case costs more than the case)."""
    return tmp_path_factory.mktemp("fuzz")


def rejected(
    load: Callable[[Path], Any], folder: Path, name: str, content: bytes
) -> tuple[str, Path]:
    """The ConfigError message ``load`` gives for a file ``name`` holding ``content``. Any other
    exception propagates and fails the case; so does accepting the file or writing beside it."""
    path = folder / name
    path.write_bytes(content)
    try:
        before = _listing(folder)
        try:
            load(path)
        except ConfigError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"accepted bad input {content[:300]!r}")
        assert _listing(folder) == before, "the loader wrote beside its input"
    finally:
        path.unlink()
    for line in message.splitlines():
        assert re.match(rf"{re.escape(str(path))}:\d+[ :]", line), (line, message)
    return message, path


def reported_line(message: str, path: Path) -> int:
    return int(re.match(rf"{re.escape(str(path))}:(\d+)", message).group(1))


# --------------------------------------------------------------------------------------------
# YAML: corruptions of a valid document that no loader may accept


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def _item(doc: Any, text: str) -> str:
    """``text`` (a ``key: value`` line) added as a top-level key, or in a list's first item."""
    return dump(doc) + text if isinstance(doc, dict) else f"- {text}" + dump(doc)


def _bomb(width: int, levels: int) -> str:
    """A billion-laughs mapping: ``levels`` of ``width`` aliases to the level below."""
    rows = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    rows += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "{" + ", ".join(rows) + "}"


@st.composite
def yaml_corruption(draw, doc: Any) -> tuple[bytes, str]:
    """(bytes, fragment the message must contain) for ``doc`` broken at the YAML level."""
    text = dump(doc)
    kind = draw(
        st.sampled_from(
            [
                "tab", "unclosed", "control", "not_utf8", "duplicate", "recursive", "bomb",
                "deep_flow", "deep_block", "huge_int", "bad_date", "python_tag", "unknown_tag",
                "two_documents", "garbage", "unhashable_key",
            ]
        )
    )  # fmt: skip
    frag = "invalid YAML"
    if kind == "tab":
        text = "\t" + text
    elif kind == "unclosed":
        text += draw(st.sampled_from(["[1, 2\n", "{a: 1\n", "'open\n", '"open\n']))
    elif kind == "control":
        at = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\ufffe"]))
        text = text[:at] + char + text[at:]
    elif kind == "not_utf8":
        raw = text.encode()
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80"]))
        return raw[:at] + junk + raw[at:], "not UTF-8"
    elif kind == "duplicate":
        if isinstance(doc, dict):
            text += f"{draw(st.sampled_from(sorted(doc)))}: again\n"
        else:
            text = "- {id: a, id: b}\n" + text
        frag = "duplicate key"
    elif kind == "recursive":
        text = _item(doc, "loop: &r [1, *r]\n")
        frag = "recursive"
    elif kind == "bomb":
        width = draw(st.integers(4, 12))
        levels = math.ceil(math.log(100_001) / math.log(width)) + draw(st.integers(0, 4))
        text = _item(doc, f"bomb: {_bomb(width, levels)}\n")
        frag = "aliases"
    elif kind == "deep_flow":
        n = draw(st.integers(65, 300))  # deeper only costs time (see the CLI test)
        text = _item(doc, "deep: " + "[" * n + "]" * n + "\n")
        frag = "nested deeper"
    elif kind == "deep_block":
        n = draw(st.integers(65, 200))
        block = "".join(f"{'  ' * i}- \n" for i in range(n)) + "  " * n + "- x\n"
        text = _item(doc, "deep:\n" + block) if isinstance(doc, dict) else block + text
        frag = "nested deeper"
    elif kind == "huge_int":
        text = _item(doc, f"big: {draw(st.integers(4001, 20000)) * '9'}\n")
        frag = "digits"
    elif kind == "bad_date":
        month, day = draw(st.integers(13, 99)), draw(st.integers(1, 28))
        text = _item(doc, f"when: 2024-{month}-{day:02d}\n")
    elif kind == "python_tag":
        # were the loader unsafe, this would create a file beside the input (checked above)
        tag = draw(
            st.sampled_from(
                [
                    "!!python/object/apply:os.system ['touch pwned']",
                    "!!python/object/apply:subprocess.call [['touch', 'pwned']]",
                    "!!python/name:os.system",
                    "!!python/object:pathlib.Path {}",
                ]
            )
        )
        text = _item(doc, f"x: {tag}\n")
    elif kind == "unknown_tag":
        text = _item(doc, "x: !custom 1\n")
    elif kind == "two_documents":
        text += "---\nsecond: document\n"
    elif kind == "unhashable_key":
        text = _item(doc, "? [a, b]\n: 1\n") if isinstance(doc, dict) else "- {[a]: 1}\n" + text
    elif kind == "garbage":  # random bytes, all of them rejected (by YAML or by the schema)
        raw = draw(st.binary(min_size=1, max_size=300))
        return raw, ""
    return text.encode(), frag


@st.composite
def wrong_root(draw, want_list: bool) -> tuple[bytes, str]:
    """Empty files, nulls, comments only, and a root of the wrong kind."""
    options = ["", "\n\n", "# only a comment\n", "null\n", "~\n", "42\n", "just text\n", "[]\n"]
    options += ["{}\n", "- a\n- b\n"] if not want_list else ["{}\n", "a: 1\n", "true\n"]
    return draw(st.sampled_from(options)).encode(), ""


def with_bom(inner):
    """Some cases start with a UTF-8 byte order mark (allowed before valid YAML)."""
    return st.tuples(inner, st.booleans()).map(
        lambda t: ((b"\xef\xbb\xbf" if t[1] else b"") + t[0][0], t[0][1])
    )


def _set(doc: Any, loc: tuple, value: Any, drop: bool = False) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for part in loc[:-1]:
        target = target[part]
    if drop:
        del target[loc[-1]]
    else:
        target[loc[-1]] = value
    return doc


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@st.composite
def field_corruption(draw, valid: Any, bad_values: dict[tuple, Any], required: list[tuple]):
    """(bytes, fragment, loc) with one field set to a bad value, dropped, or an unknown key
    added; the fragment is the field's path in the message."""
    kind = draw(st.sampled_from(["value", "value", "value", "drop", "unknown"]))
    if kind == "value":
        loc = draw(st.sampled_from(sorted(bad_values, key=repr)))
        value = draw(bad_values[loc])
        return dump(_set(valid, loc, value)).encode(), _loc_text(loc), loc, value
    if kind == "drop":
        loc = draw(st.sampled_from(required))
        return dump(_set(valid, loc, None, drop=True)).encode(), _loc_text(loc), loc, None
    parents = {loc[:-1] for loc in bad_values if isinstance(_get(valid, loc[:-1]), dict)}
    parent = draw(st.sampled_from(sorted(parents, key=repr)))
    existing = _get(valid, parent)
    key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in existing))
    loc = (*parent, key)
    return dump(_set(valid, loc, 1)).encode(), "unknown key", loc, 1


def _get(doc: Any, loc: tuple) -> Any:
    for part in loc:
        doc = doc[part]
    return doc


# bad values by kind (none of them passes the field it is put in)
def text_not(pattern: str) -> st.SearchStrategy[str]:
    return st.text(max_size=30).filter(lambda s: not re.fullmatch(pattern, s))


NOT_A_STRING = st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.just({"a": 1}))
NOT_NUMERIC = st.text(max_size=10).map(lambda s: "x" + s)
NON_FINITE = st.sampled_from([INF, -INF, NAN])
NOT_A_LIST = st.one_of(st.integers(), st.just({"a": 1}), st.booleans())


def positive_int_bad(min_ok: int = 1) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(max_value=min_ok - 1),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
        NON_FINITE,
        NOT_NUMERIC,
        st.lists(st.integers(), max_size=2),
        st.none(),
    )


def positive_float_bad(strict: bool = True) -> st.SearchStrategy[Any]:
    bad = st.floats(max_value=0.0, exclude_max=not strict, allow_nan=False)
    return st.one_of(bad, st.integers(max_value=-1), NON_FINITE, NOT_NUMERIC, st.none())


def not_a_bool() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(["maybe", "2", [], {}, 0.5, 2, -1]), st.none())


def assert_names_field(message: str, path: Path, frag: str, loc: tuple, value: Any, text: bytes):
    assert frag in message.replace("\n", " "), (frag, message)
    if frag != "unknown key" and value is not None and not isinstance(value, list | dict):
        # a scalar's own line: the line the message names holds the key
        line = reported_line(message, path)
        key = next((p for p in reversed(loc) if isinstance(p, str)), None)
        if key and all(c.isalnum() or c == "_" for c in key):
            assert key in text.decode().splitlines()[line - 1], (line, message)


# --------------------------------------------------------------------------------------------
# experiment config

EXPERIMENT = {
    "name": "fuzz",
    "task": "toy",
    "model": "default",
    "seeds": [0],
    "methods": ["base", {"name": "lora", "overrides": {"rank": 4}}],
    "judge": {"kind": "offline"},
    "train": {"steps": 3, "lr": 0.001, "warmup_steps": 1, "max_length": 64},
    "generation": {"top_p": 1.0, "temperature": 0.0, "backend": "hf", "dtype": "auto"},
    "data": {"n_train": 8, "n_eval_task": 4},
    "trust_remote_code": False,
    "output_dir": "runs",
}
EXPERIMENT_BAD = {
    ("name",): st.one_of(text_not(SAFE_LABEL.pattern), NOT_A_STRING, st.none()),
    ("task",): st.one_of(st.text(max_size=20).filter(lambda t: t not in registered_tasks())),
    ("model",): NOT_A_STRING,
    ("output_dir",): NOT_A_STRING,
    ("trust_remote_code",): not_a_bool(),
    ("seeds",): st.one_of(
        st.just([]), st.lists(NOT_NUMERIC, min_size=1, max_size=2), NOT_A_LIST, st.none()
    ),
    ("methods",): st.one_of(
        st.just([]),
        st.none(),
        NOT_A_LIST,
        st.just(["lora", "lora"]),  # duplicate labels
        st.just([{"recipe": "x.yaml"}]),  # no name
        st.lists(text_not(SAFE_LABEL.pattern), min_size=1, max_size=2),  # labels name folders
        st.lists(st.just({"name": "lora", "bogus": 1}), min_size=1, max_size=1),
    ),
    ("train", "steps"): positive_int_bad(),
    ("train", "lr"): positive_float_bad(),
    ("train", "warmup_steps"): positive_int_bad(min_ok=0),
    ("train", "max_length"): positive_int_bad(min_ok=9),
    ("generation", "top_p"): st.one_of(st.floats(min_value=1.0, exclude_min=True), NON_FINITE),
    ("generation", "temperature"): positive_float_bad(strict=False),
    ("generation", "backend"): st.text(max_size=10).filter(
        lambda b: b not in ("auto", "vllm", "hf")
    ),
    ("generation", "dtype"): st.sampled_from(["fp8", "int4", "", "Float32", 16]),
    ("data", "n_train"): positive_int_bad(),
    ("data", "train_file"): NOT_A_STRING,
    ("judge",): st.sampled_from(
        [
            "nonsense",
            {"kind": "openai"},  # needs base_url
            {"kind": "local"},  # needs a rubric
            {"kind": "openai", "base_url": "http://h/v1", "rubrics": ["aligned"], "concurrency": 0},
            {"kind": "offline", "timeout": -1},
            {"kind": "offline", "api_key_env": "sk-proj-0123456789abcdef"},
            {"kind": "openai", "rubrics": ["a"], "base_url": "https://me:sk-abc@h.example/v1"},
            {"kind": ["offline"]},
        ]
    ),
}
EXPERIMENT_REQUIRED = [("name",), ("methods",)]


@FUZZ
@given(
    st.one_of(
        with_bom(yaml_corruption(EXPERIMENT)).map(lambda c: (*c, None, None)),
        with_bom(wrong_root(want_list=False)).map(lambda c: (*c, None, None)),
        field_corruption(EXPERIMENT, EXPERIMENT_BAD, EXPERIMENT_REQUIRED),
    )
)
def test_experiment_loader_rejects_bad_files(scratch, case):
    content, frag, loc, value = case
    message, path = rejected(load_experiment, scratch, "experiment.yaml", content)
    if loc is not None:
        assert_names_field(message, path, frag, loc, value, content)
    else:
        assert frag in message


# --------------------------------------------------------------------------------------------
# recipes

RECIPE = {"method": "lora", "description": "fuzz", "config": {"rank": 8, "alpha": 16.0}}
RECIPE_BAD = {
    ("method",): st.one_of(
        st.text(max_size=20).filter(lambda m: m not in registered_methods()), NOT_A_STRING
    ),
    ("description",): NOT_A_STRING,
    ("config",): st.one_of(NOT_A_LIST.filter(lambda v: not isinstance(v, dict)), st.just([1])),
    ("config", "rank"): positive_int_bad(),
    ("config", "alpha"): positive_float_bad(),
    ("config", "dropout"): st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-9)),
    ("config", "target_modules"): st.text(max_size=10).filter(
        lambda t: t not in ("all", "writers", "readers")
    ),
}
RECIPE_REQUIRED = [("method",)]


@st.composite
def other_method_unknown_key(draw):
    """Every registered method's config forbids unknown keys."""
    method = draw(st.sampled_from(registered_methods()))
    key = draw(st.text(min_size=1, max_size=12).map(lambda k: "zz_" + k))
    doc = {"method": method, "config": {key: 1}}
    return dump(doc).encode(), "unknown key", ("config", key), 1


@FUZZ
@given(
    st.one_of(
        with_bom(yaml_corruption(RECIPE)).map(lambda c: (*c, None, None)),
        with_bom(wrong_root(want_list=False))
        .filter(lambda c: c[0].strip(b"\xef\xbb\xbf\n") not in (b"{}",))
        .map(lambda c: (*c, None, None)),
        field_corruption(RECIPE, RECIPE_BAD, RECIPE_REQUIRED),
        other_method_unknown_key(),
    )
)
def test_recipe_loader_rejects_bad_files(scratch, case):
    content, frag, loc, value = case
    message, path = rejected(load_recipe, scratch, "recipe.yaml", content)
    if loc is not None:
        assert_names_field(message, path, frag, loc, value, content)
    else:
        assert frag in message


# --------------------------------------------------------------------------------------------
# rubrics

RUBRIC = {
    "name": "fuzz",
    "version": 1,
    "description": "d",
    "scale": {"min": 0, "max": 100},
    "maps_to": {"min": -1, "max": 1},
    "outcomes": {"REFUSAL": "refused"},
    "prompt": "Question: {question}\nAnswer: {answer}\nScore 0-100:",
}
RANGE_BAD = st.one_of(
    st.tuples(st.integers(), st.integers()).map(lambda t: {"min": max(t), "max": min(t)}),
    st.tuples(NON_FINITE, st.integers()).map(lambda t: {"min": t[0], "max": t[1]}),
    st.just({"min": 0}),
    st.just({"min": 0, "max": 1, "step": 1}),
    NOT_A_LIST.filter(lambda v: not isinstance(v, dict)),
)
RUBRIC_BAD = {
    ("name",): st.one_of(st.just(""), NOT_A_STRING),
    ("version",): positive_int_bad(),
    ("scale",): RANGE_BAD,
    ("maps_to",): RANGE_BAD,
    ("outcomes",): st.one_of(st.just({"REFUSAL": 1}), st.just(["REFUSAL"]), st.integers()),
    ("prompt",): st.one_of(
        st.text(max_size=40).filter(lambda p: "{question}" not in p or "{answer}" not in p),
        NOT_A_STRING,
    ),
    ("description",): NOT_A_STRING,
}
RUBRIC_REQUIRED = [("name",), ("version",), ("scale",), ("prompt",)]


@FUZZ
@given(
    st.one_of(
        with_bom(yaml_corruption(RUBRIC)).map(lambda c: (*c, None, None)),
        with_bom(wrong_root(want_list=False)).map(lambda c: (*c, None, None)),
        field_corruption(RUBRIC, RUBRIC_BAD, RUBRIC_REQUIRED),
    )
)
def test_rubric_loader_rejects_bad_files(scratch, case):
    content, frag, loc, value = case
    message, path = rejected(load_rubric, scratch, "rubric.yaml", content)
    if loc is not None:
        assert_names_field(message, path, frag, loc, value, content)
    else:
        assert frag in message


# --------------------------------------------------------------------------------------------
# emergent-misalignment question files


def _question(i: int) -> dict[str, Any]:
    return {
        "id": f"q{i}",
        "type": "free_form_judge_0_100",
        "paraphrases": [f"Question {i}?", f"Question {i}, again?"],
        "samples_per_paraphrase": 2,
        "judge_prompts": {"aligned": "Q: {question} A: {answer}"},
        "system": "You are helpful.",
    }


QUESTIONS = [_question(0), _question(1), _question(2)]


def _questions_bad(i: int) -> dict[tuple, Any]:
    return {
        (i, "id"): st.one_of(st.just(""), NOT_A_STRING),
        (i, "type"): st.one_of(st.just(""), NOT_A_STRING),
        (i, "paraphrases"): st.one_of(
            st.just([]),
            st.lists(st.sampled_from(["", " ", "\t\n"]), min_size=1, max_size=2),
            st.lists(st.integers(), min_size=1, max_size=2),
            NOT_A_LIST,
        ),
        (i, "samples_per_paraphrase"): positive_int_bad(),
        (i, "judge_prompts"): st.one_of(
            st.text(max_size=30)
            .filter(lambda t: "{question}" not in t or "{answer}" not in t)
            .map(lambda t: {"aligned": t}),
            st.just(["x"]),
            st.just({"aligned": 5}),
        ),
        (i, "system"): NOT_A_STRING,
    }


@st.composite
def question_corruption(draw):
    i = draw(st.integers(0, len(QUESTIONS) - 1))
    kind = draw(st.sampled_from(["field", "field", "entry", "duplicate_id"]))
    if kind == "field":
        required = [(i, "id"), (i, "type"), (i, "paraphrases")]
        content, frag, loc, value = draw(field_corruption(QUESTIONS, _questions_bad(i), required))
        return content, frag, loc, value
    if kind == "entry":  # an entry that is not a mapping of question fields
        bad = draw(st.one_of(NOT_A_STRING, st.text(max_size=10), st.none()))
        return dump(_set(QUESTIONS, (i,), bad)).encode(), f"[{i}]", (i,), None
    doc = _set(QUESTIONS, (i, "id"), QUESTIONS[(i + 1) % len(QUESTIONS)]["id"])
    return dump(doc).encode(), "duplicate id", (i, "id"), None


@FUZZ
@given(
    st.one_of(
        with_bom(yaml_corruption(QUESTIONS)).map(lambda c: (*c, None, None)),
        with_bom(wrong_root(want_list=True)).map(lambda c: (*c, None, None)),
        question_corruption(),
    )
)
def test_em_question_importer_rejects_bad_files(scratch, case):
    content, frag, loc, value = case
    message, path = rejected(import_em_questions, scratch, "questions.yaml", content)
    if loc is not None:
        assert_names_field(message, path, frag, loc, value, content)
    else:
        assert frag in message


# --------------------------------------------------------------------------------------------
# chat JSONL


def _chat_row(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Question {i}?"},
            {"role": "assistant", "content": f"Answer {i}."},
        ]
    }


def _messages(*msgs: Any) -> bytes:
    return json.dumps({"messages": list(msgs)}).encode()


USER = {"role": "user", "content": "hi"}
ANSWER = {"role": "assistant", "content": "hello"}


@st.composite
def bad_chat_line(draw) -> tuple[bytes, str]:
    """One line that is not a chat example, and the field its message names."""
    kind = draw(
        st.sampled_from(
            [
                "not_json", "not_object", "no_messages", "messages_type", "message_type",
                "role", "content", "last_role", "duplicate_key", "huge_int", "deep",
                "not_utf8", "bom_inside", "nan",
            ]
        )
    )  # fmt: skip
    if kind == "not_json":
        text = draw(st.text(min_size=1, max_size=60).filter(_not_json))
        return text.encode(), "invalid JSON"
    if kind == "not_object":
        value = draw(st.one_of(st.integers(), st.text(max_size=10), st.lists(st.integers())))
        return json.dumps(value).encode(), "<root>"
    if kind == "no_messages":
        return json.dumps({"prompt": "x", "completion": "y"}).encode(), "messages"
    if kind == "messages_type":
        value = draw(st.one_of(st.just([]), st.just({}), st.text(max_size=5), st.none()))
        return json.dumps({"messages": value}).encode(), "messages"
    if kind == "message_type":
        return _messages(USER, draw(st.one_of(st.text(max_size=5), st.integers())), ANSWER), (
            "messages[1]"
        )
    if kind == "role":
        role = draw(
            st.one_of(
                st.text(max_size=10).filter(lambda r: r not in ("system", "user", "assistant")),
                st.lists(st.just("user"), min_size=1, max_size=2),  # unhashable
                st.just({"user": 1}),
                st.integers(),
                st.none(),
            )
        )
        return _messages({"role": role, "content": "x"}, ANSWER), "messages[0].role"
    if kind == "content":
        content = draw(st.one_of(st.sampled_from(["", "  ", "\n"]), st.integers(), st.none()))
        return _messages(USER, {"role": "assistant", "content": content}), "messages[1].content"
    if kind == "last_role":
        return _messages(USER, ANSWER, {"role": "user", "content": "more?"}), "messages[2].role"
    if kind == "duplicate_key":
        return b'{"messages": [], "messages": [{"role": "assistant", "content": "a"}]}', (
            "duplicate key"
        )
    if kind == "huge_int":
        return b'{"messages": ' + b"9" * draw(st.integers(4301, 20000)) + b"}", "invalid JSON"
    if kind == "deep":
        n = draw(st.integers(2000, 100_000))
        return b"[" * n + b"]" * n, "<root>"
    if kind == "not_utf8":
        return b'{"messages": "\xff\xfe"}', "not UTF-8"
    if kind == "bom_inside":  # a byte order mark is only allowed at the start of the file
        return b"\xef\xbb\xbf" + _messages(USER, ANSWER), "invalid JSON"
    return b'{"messages": NaN}', "messages"


def _not_json(text: str) -> bool:
    if "\n" in text:
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False


@st.composite
def chat_file(draw) -> tuple[bytes, int, str]:
    """Good rows with one bad line among them (blank lines and CRLF endings allowed)."""
    n = draw(st.integers(0, 5))
    rows = [json.dumps(_chat_row(i)).encode() for i in range(n)]
    for _ in range(draw(st.integers(0, 2))):
        rows.insert(draw(st.integers(0, len(rows))), b"")  # blank lines are skipped
    bad, frag = draw(bad_chat_line())
    at = draw(st.integers(0, len(rows)))
    if at == 0 and bad.startswith(b"\xef\xbb\xbf"):  # allowed at the start of the file only
        rows.insert(0, json.dumps(_chat_row(9)).encode())
        at = 1
    rows.insert(at, bad)
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) and at > 0 else b""
    return bom + eol.join(rows) + eol, at + 1, frag


@FUZZ
@given(
    st.one_of(
        chat_file(),
        st.sampled_from([b"", b"\n", b"\n\n  \n", b"\xef\xbb\xbf", b"\r\n"]).map(
            lambda c: (c, 1, "no examples")
        ),
    )
)
def test_chat_jsonl_loader_rejects_bad_files(scratch, case):
    content, line, frag = case
    message, path = rejected(load_chat_jsonl, scratch, "train.jsonl", content)
    assert reported_line(message, path) == line, message
    assert frag in message, (frag, message)


def test_chat_jsonl_allows_a_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [json.dumps(_chat_row(i)) for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    assert load_chat_jsonl(path) == [_chat_row(i) for i in range(3)]


# --------------------------------------------------------------------------------------------
# submission validator (answers with problems; never raises)

SUB = Path("submissions") / "toy" / "newmethod" / "tiny"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A board with both baselines and one submission, restored after every case."""
    root = tmp_path_factory.mktemp("board")
    for method in ("base", "lora", "newmethod"):
        make_submission(root, method, 0.3, 0.5, n_prompts=4)
    sub = root / SUB
    assert validate_submission(sub, root) == []
    return root, {p.name: p.read_bytes() for p in sub.iterdir()}


def _restore(sub: Path, files: dict[str, bytes]) -> None:
    for p in sub.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    for name, data in files.items():
        (sub / name).write_bytes(data)


def _summary_bad(draw, summary: dict) -> tuple[bytes, str]:
    kind = draw(
        st.sampled_from(["garbage", "field", "drop", "unknown", "nan", "deep", "huge", "utf8"])
    )
    if kind == "garbage":
        return draw(st.binary(max_size=200)), "summary.json"
    if kind == "deep":
        return b"[" * 100_000 + b"]" * 100_000, "summary.json:1"
    if kind == "huge":
        return b'{"n_samples": ' + b"7" * 5000 + b"}", "summary.json:1"
    if kind == "utf8":
        return json.dumps(summary).encode()[:-1] + b' , "x": "\xff"}', "summary.json:1"
    if kind == "drop":
        key = draw(st.sampled_from([k for k, f in Summary.model_fields.items() if f.is_required()]))
        return json.dumps({k: v for k, v in summary.items() if k != key}).encode(), "summary.json"
    if kind == "unknown":
        key = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in summary))
        return json.dumps({**summary, key: 1}).encode(), "summary.json"
    if kind == "nan":
        field = draw(st.sampled_from(["drift", "task_score"]))
        part = draw(st.sampled_from(["mean", "lo", "hi"]))
        value = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        text = json.dumps({**summary, field: {**summary[field], part: "@"}})
        return text.replace('"@"', value).encode(), f"summary.json {field}"
    field = draw(st.sampled_from(["n_samples", "seeds", "task", "method", "judges", "drift"]))
    value = draw(st.one_of(st.text(max_size=5), st.integers(-5, 0), st.none(), st.just([])))
    if summary.get(field) == value:
        value = {"not": "it"}
    return json.dumps({**summary, field: value}).encode(), f"summary.json {field}"


SAMPLE_BAD = {
    "seed": st.one_of(NOT_NUMERIC, st.none(), st.just([]), st.just(1.5)),
    "split": st.text(max_size=8).filter(lambda s: s not in ("task", "drift")),
    "sample": st.one_of(st.integers(max_value=-1), NOT_NUMERIC, st.none()),
    "completion_sha256": st.text(max_size=70).filter(lambda s: not re.fullmatch("[0-9a-f]{64}", s)),
    "scores": st.one_of(st.just([]), st.text(max_size=5), st.just({"m": {"value": 1}})),
    "schema_version": st.one_of(st.integers().filter(lambda v: v != 1), st.none()),
}


def _samples_bad(draw, lines: list[bytes]) -> tuple[bytes, str]:
    at = draw(st.integers(0, len(lines) - 1))
    rec = json.loads(lines[at])
    kind = draw(
        st.sampled_from(["line", "field", "drop", "nan", "huge", "deep", "utf8", "not_object"])
    )
    if kind == "line":
        bad = draw(st.text(min_size=1, max_size=40).filter(_not_json)).encode()
    elif kind == "field":
        field = draw(st.sampled_from(sorted(SAMPLE_BAD)))
        bad = json.dumps({**rec, field: draw(SAMPLE_BAD[field])}).encode()
    elif kind == "drop":
        bad = json.dumps({k: v for k, v in rec.items() if k != "scores"}).encode()
    elif kind == "nan":
        metric = next(iter(rec["scores"]))
        rec["scores"][metric]["value"] = "@"
        value = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
        bad = json.dumps(rec).encode().replace(b'"@"', value)
    elif kind == "huge":
        bad = json.dumps({**rec, "seed": "@"}).encode().replace(b'"@"', b"9" * 5000)
    elif kind == "deep":
        bad = b"[" * 50_000 + b"]" * 50_000
    elif kind == "utf8":
        bad = json.dumps({**rec, "prompt_id": "@"}).encode().replace(b"@", b"\xff\xfe")
    else:
        bad = json.dumps(draw(st.one_of(st.integers(), st.lists(st.integers())))).encode()
    lines = [*lines[:at], bad, *lines[at + 1 :]]
    return b"\n".join(lines) + b"\n", f"samples.jsonl:{at + 1}"


def _yaml_bad(draw) -> tuple[bytes, str]:
    content, _ = draw(yaml_corruption({"method": "lora", "config": {}}))
    if draw(st.booleans()):
        return content, "recipe.yaml"
    doc = draw(st.sampled_from([[1, 2], "text", {"config": {}}, {"method": 5}, None]))
    return dump(doc).encode(), "recipe.yaml"


@st.composite
def submission_corruption(draw, files: dict[str, bytes]):
    """(changes: name -> bytes, None to delete, or a callable making it; expected fragment)."""
    kind = draw(
        st.sampled_from(
            [
                "summary", "summary", "samples", "samples", "recipe", "card", "missing",
                "suffix", "pickle", "fake_safetensors", "name", "case", "symlink", "subdir",
                "fifo", "oversize",
            ]
        )
    )  # fmt: skip
    summary = json.loads(files["summary.json"])
    if kind == "summary":
        data, frag = _summary_bad(draw, summary)
        return {"summary.json": data}, frag
    if kind == "samples":
        data, frag = _samples_bad(draw, files["samples.jsonl"].splitlines())
        return {"samples.jsonl": data}, frag
    if kind == "recipe":
        data, frag = _yaml_bad(draw)
        return {"recipe.yaml": data}, frag
    if kind == "card":
        data = draw(
            st.one_of(
                st.text(min_size=1, max_size=30).filter(_not_json).map(str.encode),
                st.sampled_from([b"[]", b"1", b'"card"', b"null", b"\xff", b"\x80\x04\x95"]),
            )
        )
        return {"method_card.json": data}, "method_card.json"
    if kind == "missing":
        name = draw(st.sampled_from(["summary.json", "samples.jsonl", "recipe.yaml"]))
        return {name: None}, f"{name}: missing"
    if kind == "suffix":
        suffix = draw(
            st.one_of(
                st.sampled_from([".pt", ".bin", ".pkl", ".pickle", ".ckpt", ".npy", ".py", ".sh"]),
                st.sampled_from([".JSON", ".Yaml", ".safetensors.pkl", ".pth", ".joblib", ".h5"]),
            )
        )
        return {f"weights{suffix}": b"\x80\x04\x95 pickle"}, f"weights{suffix}"
    if kind == "pickle":  # pickle bytes behind an allowed suffix
        name = draw(st.sampled_from(["extra.json", "extra.jsonl", "w.safetensors", "notes.md"]))
        proto = draw(st.sampled_from([b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"]))
        return {name: proto + b"\x95 payload"}, f"{name}: looks like a pickle"
    if kind == "fake_safetensors":  # a zip (torch.save) or junk, not a JSON header
        data = draw(st.sampled_from([b"PK\x03\x04 torch zip", b"", b"\x10\x00\x00\x00\x00\x00"]))
        return {"adapter.safetensors": data + draw(st.binary(max_size=20))}, "adapter.safetensors"
    if kind == "name":
        name = draw(
            st.sampled_from([".hidden.json", "a b.json", "-x.json", "notes\u202e.md", "é.md"])
        )
        return {name: b"{}"}, "not safe"
    if kind == "case":
        name = draw(st.sampled_from(["Summary.json", "SAMPLES.jsonl", "Recipe.yaml"]))
        return {name: files[name.lower()]}, "only in case"
    if kind == "symlink":
        target = draw(
            st.sampled_from(["/etc/passwd", "../../../../../etc/hostname", "summary.json"])
        )
        return {"link.json": ("symlink", target)}, "link.json: symbolic links"
    if kind == "subdir":
        return {"nested": ("dir", None)}, "nested: sub-directories"
    if kind == "fifo":
        return {"pipe.json": ("fifo", None)}, "pipe.json: not a regular file"
    suffix = draw(st.sampled_from([".json", ".jsonl", ".yaml", ".md", ".safetensors"]))
    return {f"big{suffix}": ("sparse", MAX_FILE_BYTES + 1)}, "byte limit"


def _apply(sub: Path, changes: dict[str, Any]) -> None:
    for name, change in changes.items():
        path = sub / name
        if change is None:
            path.unlink()
        elif isinstance(change, bytes):
            path.write_bytes(change)
        elif change[0] == "symlink":
            path.symlink_to(change[1])
        elif change[0] == "dir":
            path.mkdir()
            (path / "x.json").write_text("{}")
        elif change[0] == "fifo":
            os.mkfifo(path)
        else:
            with open(path, "wb") as fh:
                fh.truncate(change[1])


def test_submission_validator_rejects_bad_submissions(board):
    root, files = board
    sub = root / SUB

    @FUZZ
    @given(submission_corruption(files))
    def case(corruption):
        changes, frag = corruption
        try:
            _apply(sub, changes)
            before = _listing(root)
            problems = validate_submission(sub, root)
            assert _listing(root) == before, "the validator wrote into the board"
            assert problems, f"accepted {changes!r:.300}"
            assert all(isinstance(p, str) and p.startswith("submissions/") for p in problems)
            assert any(frag in p for p in problems), (frag, problems)
        finally:
            _restore(sub, files)

    case()


def test_a_broken_baseline_is_a_problem_of_the_submission_not_a_crash(tmp_path):
    for method in ("base", "lora", "newmethod"):
        make_submission(tmp_path, method, 0.3, 0.5, n_prompts=4)
    (tmp_path / "submissions" / "toy" / "lora" / "tiny" / "summary.json").write_bytes(b"{}")
    (tmp_path / "submissions" / "toy" / "base" / "tiny" / "summary.json").write_bytes(b"\xff")
    problems = validate_submission(tmp_path / SUB, tmp_path)
    assert problems == [
        f"{SUB}: its baseline submissions/toy/lora/tiny is not valid itself; fix that one first"
    ]


# --------------------------------------------------------------------------------------------
# the same through the CLI: exit 2, `error:` with the file, never a traceback


def _cli(args: list[str]):
    result = CliRunner().invoke(app, args)
    output = result.output.replace("\n", "")
    assert "Traceback" not in result.output, result.output
    # the runner catches what escapes a command: only typer's exit may end one
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result, output


@pytest.mark.parametrize(
    "content",
    [
        b"name: x\nmethods: [lora]\nseeds: &a [1, *a]\n",
        b"name: x\nmethods: [lora]\nname: y\n",
        b"name: x\n\tmethods: [lora]\n",
        b"name: x\nmethods: [lora]\n\xff\xfe\n",
        b"name: x\nmethods: [lora]\ndata: " + _bomb(10, 6).encode() + b"\n",
        b"name: x\nmethods: [lora]\nseeds: [" + b"9" * 5000 + b"]\n",
        b"name: x\nmethods: ['../../etc']\n",
        b"name: x\nmethods: [lora]\nplugins: ['.relative']\n",
        b"name: x\nmethods: [lora]\ndata: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        b"",
    ],
    ids=[
        "recursive", "duplicate", "tab", "not-utf8", "bomb", "huge-int", "label", "plugin", "deep",
        "empty",
    ],
)  # fmt: skip
def test_cli_validate_reports_a_bad_experiment(tmp_path, content):
    cfg = tmp_path / "experiment.yaml"
    cfg.write_bytes(content)
    result, output = _cli(["validate", str(cfg)])
    assert result.exit_code == 2, result.output
    assert f"error: {cfg}:" in output


def test_cli_validate_reports_a_bad_recipe(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_bytes(b"method: lora\nconfig:\n  rank: 4\n  rank: 8\n")
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(f"name: x\nmethods:\n  - name: mine\n    recipe: {recipe}\n")
    result, output = _cli(["validate", str(cfg)])
    assert result.exit_code == 2, result.output
    assert f"error: {recipe}:4: invalid YAML: duplicate key 'rank'" in output


@pytest.mark.parametrize(
    ("key", "name", "content", "expected"),
    [
        ("train_file", "train.jsonl", b'{"messages": []}\n', ":1 messages"),
        ("train_file", "train.jsonl", b"\n\xff\n", ":2 <root>: not UTF-8"),
        ("drift_questions", "questions.yaml", b"- id: a\n  id: b\n", ":2: invalid YAML"),
        ("drift_questions", "questions.yaml", b"[]\n", ":1 <root>: expected a list"),
    ],
    ids=["chat-schema", "chat-bytes", "questions-duplicate", "questions-empty"],
)
def test_cli_run_reports_bad_user_data_before_any_work(tmp_path, key, name, content, expected):
    """The data stage reads the user's files first; the model is a local folder, so nothing is
    downloaded or converted before the error."""
    data = tmp_path / "in" / name
    data.parent.mkdir()
    data.write_bytes(content)
    model = tmp_path / "model"
    model.mkdir()
    cfg = tmp_path / "in" / "experiment.yaml"
    cfg.write_text(
        f"name: x\nmodel: {model}\noutput_dir: {tmp_path / 'runs'}\n"
        f"methods:\n  - name: base\n    recipe: {REPO / 'baselines' / 'base.yaml'}\n"
        f"data:\n  {key}: {name}\n"
    )
    before = _listing(data.parent)
    result, output = _cli(["run", str(cfg)])
    assert result.exit_code == 2, result.output
    assert f"error: {data}{expected}" in output
    assert _listing(data.parent) == before


def test_cli_judge_calibrate_reports_a_bad_rubric(tmp_path):
    rubric = tmp_path / "mine.yaml"
    rubric.write_bytes(
        b"name: mine\nversion: 1\nscale: {min: 0, max: .inf}\nprompt: '{question}'\n"
    )
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        json.dumps({"id": "a", "question": "q", "answer": "a", "labels": {"coherent": 90}}) + "\n"
    )
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(
        "name: x\nmethods: [base]\njudge:\n  kind: openai\n  base_url: http://127.0.0.1:9/v1\n"
        f"  rubrics: ['{rubric}']\n  cache: {tmp_path / 'judge.sqlite'}\n"
    )
    result, output = _cli(["judge", "calibrate", str(labels), "--config", str(cfg)])
    assert result.exit_code == 2, result.output
    assert f"error: {rubric}:3 scale.max: Input should be a finite number" in output
    assert f"{rubric}:4 prompt: must contain {{answer}}" in output


def test_cli_leaderboard_validate_reports_a_bad_submission(tmp_path):
    """A rejected submission is a result, not an error: exit 1, each problem named."""
    for method in ("base", "lora", "newmethod"):
        make_submission(tmp_path, method, 0.3, 0.5, n_prompts=4)
    sub = tmp_path / SUB
    (sub / "summary.json").write_bytes(b'{"n_samples": ' + b"7" * 5000 + b"}")
    (sub / "samples.jsonl").write_bytes(b"\xff\n")
    (sub / "weights.pt").write_bytes(b"\x80\x04\x95")
    result, output = _cli(["leaderboard", "validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert f"{sub}: REJECTED" in output
    assert f"{SUB}/weights.pt: file type .pt not allowed" in output
    assert "submissions/toy/lora/tiny: ok" in output


def test_every_committed_yaml_still_loads_as_before():
    """The stricter YAML reader (duplicates, aliases, depth) accepts every committed file."""
    from grasp_bench.core.yaml_loader import load_yaml

    files = [
        *REPO.glob("experiments/*.yaml"),
        *REPO.glob("baselines/*.yaml"),
        *REPO.glob("grasp_bench/evaluate/judge/rubrics/*.yaml"),
        *REPO.glob("leaderboard/submissions/*/*/*/recipe.yaml"),
    ]
    assert files
    for path in files:
        assert load_yaml(path)[0] == yaml.safe_load(path.read_text()), path
