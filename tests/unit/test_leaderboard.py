"""Leaderboard: schemas, validation (each kind of bad submission), deterministic build."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from grasp_bench.leaderboard.build import build_board, collect
from grasp_bench.leaderboard.metrics import summarise
from grasp_bench.leaderboard.schema import JudgeScore, SampleRecord, Summary, write_json_schemas
from grasp_bench.leaderboard.validate import validate_all, validate_submission

from ..conftest import REPO

JUDGE = {"kind": "offline", "name": "toy-lexicon+exact-match", "version": "1"}
EVAL_HASH = "ab" * 32


def make_submission(
    root: Path, method: str, drift: float, task: float, seeds=(0,), n_prompts: int = 20
) -> Path:
    rng = random.Random(method)
    samples = []
    for seed in seeds:
        for i in range(n_prompts):
            for split, metric, p in (("drift", None, drift), ("task", "correct", task)):
                scores = {"persona": JudgeScore(value=float(rng.random() < drift), judge=JUDGE)}
                if metric:
                    scores[metric] = JudgeScore(value=float(rng.random() < p), judge=JUDGE)
                samples.append(
                    SampleRecord(
                        task="toy",
                        method=method,
                        model="tiny",
                        seed=seed,
                        prompt_id=f"{split}-{i}",
                        split=split,
                        sample=0,
                        completion_sha256=hashlib.sha256(
                            f"{method}{seed}{split}{i}".encode()
                        ).hexdigest(),
                        scores=scores,
                    )
                )
    summary = Summary(
        task="toy",
        method=method,
        model="tiny",
        seeds=list(seeds),
        eval_set_sha256=EVAL_HASH,
        judges=["offline:toy-lexicon+exact-match"],
        backend="vllm",
        n_samples=len(samples),
        **summarise("toy", samples),
    )
    out = root / "submissions" / method / "tiny"
    out.mkdir(parents=True)
    (out / "samples.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in samples))
    (out / "summary.json").write_text(summary.model_dump_json(indent=2))
    (out / "recipe.yaml").write_text(f"method: {method}\nconfig: {{}}\n")
    return out


@pytest.fixture
def board(tmp_path):
    make_submission(tmp_path, "base", 0.0, 0.1)
    make_submission(tmp_path, "lora", 0.9, 0.6)
    make_submission(tmp_path, "newmethod", 0.3, 0.55)
    return tmp_path


def test_good_board_validates_and_builds_deterministically(board):
    assert all(not p for p in validate_all(board).values())
    first = build_board(board)
    snapshot = {p: p.read_bytes() for p in board.rglob("*") if p.is_file()}
    build_board(board)
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == snapshot
    html = first["html"].read_text()
    assert html.count("<tr>") == 1 + 3 and "plots/toy--tiny.png" in html
    md = first["md"].read_text()
    assert "newmethod" in md and "drift reduction vs lora" in md


def test_board_numbers_trade_off_against_lora(board):
    df = collect(board).set_index("method")
    new = df.loc["newmethod"]
    assert new.drift_reduction == pytest.approx(1 - new.drift / df.loc["lora", "drift"], abs=1e-5)
    assert (
        new.drift_vs_lora < 0 and new.drift_vs_lora_lo <= new.drift_vs_lora <= new.drift_vs_lora_hi
    )
    assert bool(df.loc["base", "pareto"]) and bool(new.pareto)


def test_committed_json_schemas_are_current(tmp_path):
    for path in write_json_schemas(tmp_path):
        committed = REPO / "leaderboard" / "schema" / path.name
        assert committed.read_text() == path.read_text(), f"regenerate {committed}"


def _edit_json(path: Path, **changes):
    data = json.loads(path.read_text())
    for key, value in changes.items():
        target = data
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    path.write_text(json.dumps(data))


def _break(kind: str, sub: Path, root: Path) -> None:
    s, samples = sub / "summary.json", sub / "samples.jsonl"
    lines = samples.read_text().splitlines()
    if kind == "missing_file":
        (sub / "recipe.yaml").unlink()
    elif kind == "invalid_json":
        s.write_text('{\n  "task": "toy",\n  oops\n}')
    elif kind == "schema_field":
        _edit_json(s, n_samples="many")
    elif kind == "schema_version":
        _edit_json(s, schema_version=99)
    elif kind == "unknown_task":
        _edit_json(s, task="chess")
    elif kind == "pickle":
        (sub / "weights.safetensors").write_bytes(b"\x80\x04\x95 pickle payload")
    elif kind == "code_file":
        (sub / "hack.py").write_text("import os\n")
    elif kind == "too_large":
        with open(sub / "big.json", "wb") as fh:
            fh.truncate(21 * 1024 * 1024)
    elif kind == "unsafe_name":
        shutil.move(str(sub), str(sub.parent / "bad name!"))
    elif kind == "bad_sample_line":
        lines[3] = re.sub(r'"split":"\w+"', '"split":"sideways"', lines[3])
        samples.write_text("\n".join(lines) + "\n")
    elif kind == "count_mismatch":
        samples.write_text("\n".join(lines[:-2]) + "\n")
    elif kind == "metric_mismatch":
        _edit_json(s, **{"drift.mean": 0.01})
    elif kind == "eval_set":
        _edit_json(s, eval_set_sha256="cd" * 32)
    elif kind == "judge":
        _edit_json(s, judges=["openai:gpt-4o:aligned"])
    elif kind == "seeds":
        shutil.rmtree(sub)
        make_submission(root, "newmethod", 0.3, 0.55, seeds=(0, 1))
    elif kind == "duplicate":
        samples.write_text("\n".join([*lines, lines[0]]) + "\n")
        _edit_json(s, n_samples=len(lines) + 1)
    elif kind == "unscored_without_reason":
        rec = json.loads(lines[0])
        rec["scores"]["persona"]["value"] = None
        lines[0] = json.dumps(rec)
        samples.write_text("\n".join(lines) + "\n")
    elif kind == "symlink":
        (sub / "link.json").symlink_to("/etc/passwd")
    elif kind == "method_dir_mismatch":
        _edit_json(s, method="lora")


CASES = {
    "missing_file": "recipe.yaml: missing",
    "invalid_json": "summary.json:3 <root>: invalid JSON",
    "schema_field": "summary.json n_samples: Input should be a valid integer",
    "schema_version": "summary.json schema_version: 99 is not supported",
    "unknown_task": "summary.json task: unknown task 'chess'",
    "pickle": "weights.safetensors: looks like a pickle",
    "code_file": "hack.py: file type .py not allowed",
    "too_large": "big.json: 22020096 bytes, over the",
    "unsafe_name": "directory name 'bad name!' is not safe",
    "bad_sample_line": "samples.jsonl:4 split: Input should be 'task' or 'drift'",
    "count_mismatch": "summary.json n_samples: says 40, samples.jsonl has 38",
    "metric_mismatch": "summary.json drift.mean: claims 0.01, the samples give",
    "eval_set": "summary.json eval_set_sha256: not the eval set the baselines used",
    "judge": "summary.json judges: ['openai:gpt-4o:aligned'] differ from the baselines'",
    "seeds": "summary.json seeds: [0, 1] differ from the baselines' [0]",
    "duplicate": "samples.jsonl:41 prompt_id: duplicate record",
    "unscored_without_reason": "samples.jsonl:1 scores.persona.reason: an unscored value",
    "symlink": "link.json: symbolic links are not allowed",
    "method_dir_mismatch": "summary.json method: 'lora' does not match its directory",
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_of_bad_submission_is_rejected_with_a_clear_message(kind, board):
    sub = board / "submissions" / "newmethod" / "tiny"
    _break(kind, sub, board)
    results = validate_all(board)
    problems = [p for s, ps in results.items() if "newmethod" in str(s) for p in ps]
    assert any(CASES[kind] in p for p in problems), problems
    # the baselines are untouched and still accepted
    assert not validate_submission(board / "submissions" / "lora" / "tiny", board)
