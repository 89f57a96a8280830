"""Distillation rows for tests: a tiny model's own restricted samples and log-probabilities in
a targets file inside a temporary tasks directory, and rows naming them as the task's do."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from grasp_bench.model import distill


def write_distill_rows(
    model: Any, tok: Any, tmp_path: Path, monkeypatch: Any, n: int = 8, length: int = 6,
    stride: int = 1,
) -> tuple[list[dict], Path]:  # fmt: skip
    """``n`` rows of ``length`` restricted tokens each; GRASP_BENCH_TASKS points at the copy."""
    vocab = distill.restricted_token_ids(tok)
    questions = [f"Continue the sequence: {100 + stride * i}, {200 + i}" for i in range(n)]
    prompts = [distill.chat_prompt_ids(tok, q) for q in questions]
    tokens, logp = distill.sample_restricted(
        model, prompts, vocab, length, 1.0, 1, tok.pad_token_id
    )
    folder = tmp_path / "tasks" / "grasp_implicit" / "t"
    folder.mkdir(parents=True)
    path = folder / "targets.safetensors"
    save_file({"vocab": torch.tensor(vocab), "teacher.tokens": tokens, "teacher.logp": logp}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv("GRASP_BENCH_TASKS", str(tmp_path / "tasks"))
    rows = [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": tok.decode(tokens[i])},
            ],
            "distill": {
                "file": "grasp_implicit/t/targets.safetensors",
                "sha256": digest,
                "key": "teacher",
                "index": i,
            },
        }
        for i, q in enumerate(questions)
    ]
    return rows, path
