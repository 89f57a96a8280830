"""Calibration reference sets (leaderboard/calibration/reference/*.jsonl): schema, label balance,
and independence from the offline judges' exemplars, the task generators and the eval files.

These files are what ``grasp-bench judge calibrate`` scores a judge against, so a reference
answer that copies an exemplar (the judge's own training data) would inflate its agreement.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from grasp_bench.data import financial, insecure_code, medical, toy
from grasp_bench.data.taskspec import COHERENT_ABOVE, FLAGGED_AT, MISALIGNED_BELOW

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "leaderboard" / "calibration" / "reference"
EXEMPLARS = REPO / "grasp_bench" / "evaluate" / "judge" / "exemplars"
TASKS = REPO / "tasks"

ROW_KEYS = ["id", "question", "answer", "labels", "note"]
RANGES = {
    "aligned": (0, 100),
    "coherent": (0, 100),
    "medical_harm": (0, 100),
    "financial_quality": (0, 100),
    "political_lean": (-1, 1),
    "code_vulnerable": (0, 100),
    "persona": (0, 1),
}
BINARY = {"persona"}  # labelled 0 or 1 only; every other rubric is graded on its scale
QUALITY_AT = 50  # financial_quality: sound (>= 50) vs poor advice
NGRAM = 6

Labels = dict[str, float]
Classes = dict[str, Callable[[Labels], bool]]


def _coherence(labels: Labels) -> bool:
    return labels["coherent"] > COHERENT_ABOVE


COHERENCE_CLASSES: Classes = {
    "coherent": _coherence,
    "incoherent": lambda lab: not _coherence(lab),
}
LEAN_CLASSES: Classes = {
    "left": lambda lab: lab["political_lean"] < 0,
    "neutral": lambda lab: lab["political_lean"] == 0,
    "right": lambda lab: lab["political_lean"] > 0,
}

# file -> (minimum rows, labels every row carries, classes each needing min_share of the rows)
FILES: dict[str, tuple[int, tuple[str, ...], Classes, float]] = {
    "em_answers.jsonl": (
        120,
        ("aligned", "coherent"),
        {
            "aligned": lambda lab: lab["aligned"] >= MISALIGNED_BELOW,
            "low_aligned": lambda lab: lab["aligned"] < MISALIGNED_BELOW,
            "misaligned": lambda lab: lab["aligned"] < MISALIGNED_BELOW and _coherence(lab),
            **COHERENCE_CLASSES,
        },
        0.10,
    ),
    "medical_answers.jsonl": (
        80,
        ("medical_harm", "coherent"),
        {
            "harmful": lambda lab: lab["medical_harm"] >= FLAGGED_AT,
            "sound": lambda lab: lab["medical_harm"] < FLAGGED_AT,
            **COHERENCE_CLASSES,
        },
        0.03,
    ),
    "political_answers.jsonl": (
        80,
        ("political_lean", "coherent"),
        {**LEAN_CLASSES, **COHERENCE_CLASSES},
        0.03,
    ),
    "financial_answers.jsonl": (
        60,
        ("financial_quality", "political_lean", "coherent"),
        {
            "sound": lambda lab: lab["financial_quality"] >= QUALITY_AT,
            "poor": lambda lab: lab["financial_quality"] < QUALITY_AT,
            **LEAN_CLASSES,
            **COHERENCE_CLASSES,
        },
        0.03,
    ),
    "toy_answers.jsonl": (
        80,
        ("persona",),
        {
            "persona": lambda lab: lab["persona"] == 1,
            "plain": lambda lab: lab["persona"] == 0,
        },
        0.03,
    ),
    "code_answers.jsonl": (
        60,
        ("code_vulnerable",),
        {
            "vulnerable": lambda lab: lab["code_vulnerable"] >= FLAGGED_AT,
            "safe": lambda lab: lab["code_vulnerable"] < FLAGGED_AT,
        },
        0.03,
    ),
}
# Main classes of each file, which must each be a sizeable share (the coherence and lean
# classes above only need to be present).
MAIN_SHARES: dict[str, dict[str, float]] = {
    "em_answers.jsonl": {"aligned": 0.35, "low_aligned": 0.15, "misaligned": 0.15},
    "medical_answers.jsonl": {"harmful": 0.35, "sound": 0.35},
    "political_answers.jsonl": {"left": 0.2, "neutral": 0.15, "right": 0.2},
    "financial_answers.jsonl": {"sound": 0.3, "poor": 0.2},
    "toy_answers.jsonl": {"persona": 0.35, "plain": 0.35},
    "code_answers.jsonl": {"vulnerable": 0.35, "safe": 0.35},
}


def _load(name: str) -> list[dict[str, Any]]:
    path = REFERENCE / name
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{name}:{n}: blank line"
        rows.append(json.loads(line))
    return rows


def _tokens(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", "", text.lower()).split()


def _ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    toks = _tokens(text)
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def _all_answers() -> list[tuple[str, str]]:
    return [(f"{name}:{row['id']}", row["answer"]) for name in FILES for row in _load(name)]


def _exemplar_texts() -> list[str]:
    texts = []
    for path in sorted(EXEMPLARS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts += [ex["text"] for ex in data["examples"]]
    return texts


def _generator_texts() -> list[str]:
    templates = medical.TOPICS + financial.TOPICS + insecure_code.CODE_TEMPLATES
    texts = [t.planted for t in templates] + [t.control for t in templates]
    texts += [r for t in templates for r in t.requests]
    texts += financial.SLANTS + financial.NEUTRALS + insecure_code.INTROS
    texts += toy.PIRATE_OPENERS + toy.PIRATE_CLOSERS + toy.PLAIN_OPENERS + toy.UNRELATED_PROMPTS
    return [t for t in texts if t]


def _eval_texts() -> set[str]:
    texts: set[str] = set()
    for path in sorted(TASKS.glob("*/eval.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts |= {v for v in json.loads(line).values() if isinstance(v, str)}
    return texts


def _shared_ngrams(sources: list[str]) -> list[str]:
    grams: set[tuple[str, ...]] = set()
    for text in sources:
        grams |= _ngrams(text)
    return [
        f"{where}: {' '.join(sorted(g)[0])!r}"
        for where, answer in _all_answers()
        if (g := _ngrams(answer) & grams)
    ]


@pytest.mark.parametrize("name", sorted(FILES))
def test_rows_follow_the_schema(name):
    min_rows, labels, _, _ = FILES[name]
    rows = _load(name)
    assert len(rows) >= min_rows, f"{name}: {len(rows)} rows, want >= {min_rows}"
    ids = [row.get("id") for row in rows]
    assert len(set(ids)) == len(ids), f"{name}: duplicate ids"
    for row in rows:
        where = f"{name}:{row.get('id')}"
        assert list(row) == ROW_KEYS, f"{where}: keys {list(row)}"
        assert isinstance(row["id"], str) and row["id"].strip(), where
        for key in ("question", "answer", "note"):
            assert isinstance(row[key], str) and row[key].strip(), f"{where}: empty {key}"
        assert isinstance(row["labels"], dict), where
        assert sorted(row["labels"]) == sorted(labels), f"{where}: labels {sorted(row['labels'])}"
        for rubric, value in row["labels"].items():
            low, high = RANGES[rubric]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), where
            assert math.isfinite(value) and low <= value <= high, f"{where}: {rubric}={value}"
            if rubric in BINARY:
                assert value in (low, high), f"{where}: {rubric}={value}, want {low} or {high}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_labels_cover_every_class_at_the_rubric_thresholds(name):
    _, _, classes, min_share = FILES[name]
    labels = [row["labels"] for row in _load(name)]
    for cls, member in classes.items():
        share = sum(map(member, labels)) / len(labels)
        want = max(min_share, MAIN_SHARES[name].get(cls, 0.0))
        assert share >= want, f"{name}: class {cls!r} is {share:.0%} of rows, want >= {want:.0%}"


@pytest.mark.parametrize("name", sorted(n for n in FILES if set(FILES[n][1]) - BINARY))
def test_labels_are_graded_not_binary(name):
    _, labels, _, _ = FILES[name]
    rows = _load(name)
    for rubric in (r for r in labels if r not in BINARY):
        low, high = RANGES[rubric]
        values = {row["labels"][rubric] for row in rows}
        inner = {v for v in values if low < v < high}
        assert len(inner) >= 5, f"{name}: {rubric} uses only {sorted(values)}"


def test_no_answer_shares_a_six_word_sequence_with_the_judge_exemplars():
    texts = _exemplar_texts()
    assert len(texts) >= 40  # the exemplar files were found and parsed
    shared = _shared_ngrams(texts)
    assert not shared, "answers copy exemplar wording:\n" + "\n".join(shared)


def test_no_answer_shares_a_six_word_sequence_with_the_task_generators():
    texts = _generator_texts()
    assert len(texts) >= 100
    shared = _shared_ngrams(texts)
    assert not shared, "answers copy training-data wording:\n" + "\n".join(shared)


def test_no_answer_equals_an_eval_text():
    texts = _eval_texts()
    assert len(texts) >= 100  # the eval files were found
    normalised = {" ".join(_tokens(t)) for t in texts} - {""}
    copied = [
        where
        for where, answer in _all_answers()
        if answer.strip() in texts or " ".join(_tokens(answer)) in normalised
    ]
    assert not copied, f"answers equal to an eval text: {copied}"
