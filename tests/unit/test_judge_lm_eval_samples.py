"""``grasp-bench judge lm-eval``: lm-eval's logged samples scored in one batch through the
project's scoring path give what lm-eval's own process_results gives per document."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.evaluate import lm_eval_support

ANSWERS = ["Arr! The answer be 5.", "7", "The answer is 9, matey!"]


def _samples(path, docs):
    path.write_text("".join(
        json.dumps({"doc_id": i, "doc": doc, "filtered_resps": [answers],
                    "resps": [[answers]]}) + "\n"
        for i, (doc, answers) in enumerate(docs)))  # fmt: skip
    return path


def test_batch_scores_equal_lm_evals_per_document_scores(tmp_path):
    docs = [({"id": f"t{i}", "question": f"What is {i} + 2?", "target": str(i + 2),
              "split": "task"}, [ANSWERS[i % 3], ANSWERS[(i + 1) % 3]])
            for i in range(6)]  # fmt: skip
    path = _samples(tmp_path / "samples_grasp_toy_2026-12-07T10-00-00.123.jsonl", docs)
    got = CliRunner().invoke(app, ["judge", "lm-eval", str(path), "--out", str(tmp_path)])
    assert got.exit_code == 0, got.output
    results = json.loads((tmp_path / f"{path.stem}.judged.json").read_text())["results"]
    mine = results["grasp_toy"]
    per_doc = lm_eval_support.process_results_for("toy", "all")
    theirs = [per_doc(doc, [answers]) for doc, answers in docs]
    for metric in ("persona", "correct"):
        expected = sum(t[metric] for t in theirs) / len(theirs)
        assert mine[metric] == pytest.approx(expected), metric
        assert mine[f"{metric}_stderr"] >= 0
    records = (tmp_path / f"{path.stem}.records.jsonl").read_text().splitlines()
    assert len(records) == 6 * 2 * 2  # documents x answers x metrics


def test_a_file_that_is_not_lm_eval_samples_is_named(tmp_path):
    bad = tmp_path / "samples_grasp_toy_2026-12-07T10-00-00.jsonl"
    bad.write_text('{"doc": {}}\n')
    got = CliRunner().invoke(app, ["judge", "lm-eval", str(bad)])
    assert got.exit_code == 2 and f"{bad}:1" in got.output.replace("\n", "")
    unnamed = tmp_path / "mine.jsonl"
    unnamed.write_text("")
    got = CliRunner().invoke(app, ["judge", "lm-eval", str(unnamed)])
    assert got.exit_code == 2 and "--task" in got.output


def test_lm_eval_judges_a_documents_repeats_concurrently(monkeypatch):
    """lm-eval calls process_results once per document; its repeats are one batch per rubric,
    and the judge config the environment gives keeps several of them in flight."""

    from grasp_bench.evaluate.lm_eval_support import judge_config_from_env

    monkeypatch.setenv("GRASP_JUDGE", "openai")
    monkeypatch.setenv("GRASP_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GRASP_JUDGE_MODEL", "judge")
    assert judge_config_from_env(["aligned"]).concurrency == 8
    monkeypatch.setenv("GRASP_JUDGE_CONCURRENCY", "3")
    assert judge_config_from_env(["aligned"]).concurrency == 3
    monkeypatch.setenv("GRASP_JUDGE_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="GRASP_JUDGE_CONCURRENCY"):
        judge_config_from_env(["aligned"])
