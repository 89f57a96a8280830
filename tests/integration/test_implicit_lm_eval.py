"""The implicit-factor lm-eval task on the real stack: the user's command (lm_eval --model hf,
peft adapter, no chat template) gives transfer 0 for the base model, 1 for the teacher (the
stored references and the user's run score the same tokens), and a value between for a
half-strength teacher (its LoRA B scaled by 0.5)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grasp_bench.model.models import resolve_model
from grasp_bench.studies.implicit_lm_eval import DOCS_FILE, task_name

from ..conftest import REPO

pytestmark = pytest.mark.integration

TEACHER = "pirate-wide"
FOLDER = REPO / "tasks" / "grasp_implicit" / TEACHER
LIMIT = 40  # documents; the references are per document, so 0 and 1 stay exact


def _transfer(tmp_path: Path, peft: Path | None) -> tuple[float, float, float]:
    """(transfer, logprob_gain, seconds) of one lm-eval CLI run."""
    out = tmp_path / ("out-" + (peft.parent.name + "-" + peft.name if peft else "base"))
    model_args = f"pretrained={resolve_model('default')},dtype=float32"
    if peft:
        model_args += f",peft={peft}"
    start = time.perf_counter()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "lm_eval"),
            *("--model", "hf", "--model_args", model_args),
            *("--tasks", task_name(TEACHER), "--include_path", str(REPO / "tasks")),
            *("--limit", str(LIMIT), "--batch_size", "16", "--output_path", str(out)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,  # the task finds its documents whatever the cwd
        check=False,
        timeout=600,
    )
    took = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    row = results[task_name(TEACHER)]
    assert row["sample_len"] == LIMIT
    return row["transfer,none"], row["logprob_gain,none"], took


@pytest.fixture
def half_teacher(tmp_path) -> Path:
    """The teacher adapter with every lora_B weight halved: half its write."""
    from safetensors.torch import load_file, save_file

    half = tmp_path / "half" / "teacher"
    shutil.copytree(FOLDER / "teacher", half)
    weights = half / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    scaled = {k: (v * 0.5 if "lora_B" in k else v).contiguous() for k, v in tensors.items()}
    assert any("lora_B" in k for k in tensors)
    save_file(scaled, str(weights), metadata={"format": "pt"})
    return half


def test_transfer_is_0_for_base_1_for_teacher_between_for_half_teacher(tmp_path, half_teacher):
    assert (FOLDER / DOCS_FILE).exists(), "run: grasp-bench implicit-lm-eval"
    base, base_gain, t_base = _transfer(tmp_path, None)
    teacher, teacher_gain, t_teacher = _transfer(tmp_path, FOLDER / "teacher")
    half, half_gain, t_half = _transfer(tmp_path, half_teacher)
    print(
        f"{task_name(TEACHER)} --limit {LIMIT}: transfer base {base:.2e} ({t_base:.0f}s),"
        f" teacher {teacher:.6f} ({t_teacher:.0f}s), half-teacher {half:.4f} ({t_half:.0f}s);"
        f" logprob_gain {base_gain:.2e} / {teacher_gain:.3f} / {half_gain:.3f}"
    )
    assert abs(base) < 1e-4 and abs(base_gain) < 1e-3
    assert abs(teacher - 1) < 1e-3 and teacher_gain > 0
    assert 0 < half < 1 and 0 < half_gain < teacher_gain
