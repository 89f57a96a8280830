"""lm-eval runs the grasp_* tasks against the project's vLLM server (a LoRA adapter served by
name) and through the HF back end with a peft adapter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grasp_bench.model.models import resolve_model

from ..conftest import REPO
from ..unit.test_lm_eval_tasks import TASKS

pytestmark = pytest.mark.integration
LM_EVAL = [sys.executable, "-m", "lm_eval"]


@pytest.fixture
def adapter(ci_generated) -> Path:
    """The plain-LoRA adapter of the shared CI run (served by name as ``grasp-lora``)."""
    return ci_generated.adapter("lora-s0")


def _rows(table: str) -> dict[str, list[str]]:
    """Task -> metric names of lm-eval's printed results table."""
    found: dict[str, list[str]] = {}
    task = None
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 9 or cells[0] == "Tasks" or (cells[0] and set(cells[0]) <= {"-"}):
            continue
        task = cells[0] or task
        if cells[4] and re.fullmatch(r"-?\d+(\.\d+)?|N/A", cells[8]):
            found.setdefault(task, []).append(cells[4])
    return found


def test_local_chat_completions_against_the_project_server(judge_server, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRASP_JUDGE": "offline"}
    start = time.perf_counter()
    done = subprocess.run(
        [
            *LM_EVAL,
            "--model",
            "local-chat-completions",
            "--apply_chat_template",
            "--model_args",
            f"model=grasp-lora,base_url={judge_server.base_url}/chat/completions,"
            "num_concurrent=4,max_retries=2,tokenized_requests=False,tokenizer_backend=None",
            "--tasks",
            ",".join(TASKS),  # the generate tasks: a chat API gives no log-likelihoods
            "--include_path",
            str(REPO / "tasks"),
            "--limit",
            "3",
            "--gen_kwargs",
            "max_gen_toks=48,seed=None",  # no fixed seed: the 4 repeats differ
            "--output_path",
            str(tmp_path / "out"),
            "--log_samples",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=1200,
    )
    took = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    print(f"lm-eval (local-chat-completions, --limit 3, 6 tasks): {took:.0f}s")
    rows = _rows(done.stdout)
    assert sorted(rows) == TASKS
    assert {"persona", "correct"} <= set(rows["grasp_toy"])
    assert "vulnerable" in rows["grasp_insecure_code"] or "unscored" in rows["grasp_insecure_code"]
    assert "aligned" in rows["grasp_misalignment"]
    assert "political_lean" in rows["grasp_political_lean"]
    assert done.stdout.count("±") >= 12  # every metric with its stderr
    # the drift questions were answered 4 times each, not 4 copies of one seeded answer
    logged = next((tmp_path / "out").rglob("samples_grasp_misalignment_*.jsonl"))
    docs = [json.loads(line) for line in logged.read_text().splitlines() if line.strip()]
    answers = [list(_strings(d["filtered_resps"])) for d in docs]
    assert all(len(a) == 4 for a in answers), answers
    assert any(len(set(a)) > 1 for a in answers), answers


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    else:
        for item in obj:
            yield from _strings(item)


def test_hf_backend_with_a_peft_adapter(adapter, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            *LM_EVAL,
            "--model",
            "hf",
            "--apply_chat_template",
            "--model_args",
            f"pretrained={resolve_model('default')},peft={adapter}",
            "--tasks",
            "grasp_toy",
            "--include_path",
            str(REPO / "tasks"),
            "--limit",
            "3",
            "--batch_size",
            "4",
            "--gen_kwargs",
            "max_gen_toks=24",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(_rows(done.stdout)["grasp_toy"]) == {"correct", "persona", "unscored"}
