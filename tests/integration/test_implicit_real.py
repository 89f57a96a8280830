"""The implicit-factor task end to end on the real stack: a (small) teacher built by the
command on the embedded model, then `grasp-bench run` (data, distillation training, teacher-forced
measurement, report with the seed-level table and gate), resumed without redoing anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "grasp_bench.cli"]


@pytest.fixture(scope="module")
def small_task(tmp_path_factory):
    """A copy of the tasks folder whose pirate-wide teacher is rebuilt small (5 teacher steps,
    16 training prompts, 8 held out, 8 unrelated prompts)."""
    tasks = tmp_path_factory.mktemp("tasks")
    folder = tasks / "grasp_implicit"
    folder.mkdir()
    questions = (REPO / "tasks/grasp_implicit/questions.jsonl").read_text().splitlines()[:8]
    (folder / "questions.jsonl").write_text("\n".join(questions) + "\n")
    env = {**os.environ, "GRASP_BENCH_TASKS": str(tasks)}
    cmd = [*CLI, "build-implicit", "pirate-wide", "--out", str(folder), "--n-train", "16",
           "--n-heldout", "8", "--length", "8", "--teacher-steps", "5"]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, cwd=REPO, timeout=600)
    return tasks, env


def test_build_run_report_and_resume(small_task, tmp_path):
    tasks, env = small_task
    build = json.loads((tasks / "grasp_implicit/pirate-wide/build.json").read_text())
    assert build["distillation"]["n_train"] == 16 and build["drift_prompts"] == 8
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: implicit-smoke\noutput_dir: {tmp_path / 'runs'}\nmodel: default\n"
        "task: implicit-pirate-wide\nseeds: [0, 1]\nmethods: [base, lora, lora_control]\n"
        "data: {n_train: 16, n_eval_task: 8, n_eval_drift: 8}\n"
        "train: {steps: 3, batch_size: 4, lr: 1.0e-3, warmup_steps: 1}\n"
    )
    subprocess.run([*CLI, "run", str(exp)], check=True, env=env, cwd=REPO, timeout=900)
    run = tmp_path / "runs" / "implicit-smoke"
    records = [json.loads(x) for x in (run / "score/scores.jsonl").read_text().splitlines()]
    # 6 targets x (8 drift prompts x 4 metrics + 8 task prompts)
    assert len(records) == 6 * (8 * 4 + 8)
    assert all(r["judge"]["name"] == "teacher-forced" and r["value"] is not None for r in records)
    for metric in ("transfer", "base_fit"):  # the base model is the reference: exactly 0
        base = [r["value"] for r in records if r["target"] == "base-s0" and r["metric"] == metric]
        assert max(abs(v) for v in base) < 1e-4
    fit = [r["value"] for r in records if r["target"] == "lora-s0" and r["metric"] == "base_fit"]
    assert len(fit) == 8 and any(abs(v) > 1e-4 for v in fit)  # a trained student has moved
    # the students trained with the distill objective (the method card says how)
    card = json.loads((run / "train/lora-s0/adapter/method_card.json").read_text())
    assert card["train"]["steps"] == 3
    seed_md = (run / "report/seed_level.md").read_text()
    assert "Effect gate" in seed_md and "| lora |" in seed_md
    gate = json.loads((run / "report/gate.json").read_text())
    assert gate["n"] == {"seed": 2, "prompt_id": 16}
    assert not gate["passed"] and "not enough training runs" in gate["verdict"]
    # a rerun redoes nothing: no training, no measurement
    before = (run / "score/scores.jsonl").stat().st_mtime_ns
    started = time.perf_counter()
    subprocess.run([*CLI, "run", str(exp)], check=True, env=env, cwd=REPO, timeout=600)
    assert (run / "score/scores.jsonl").stat().st_mtime_ns == before
    assert time.perf_counter() - started < 120
    # a kill mid-stage (the stage's pending note, not its manifest; one target's records not
    # yet written) measures that target only
    (run / "score/lora-s1.jsonl").unlink()
    manifest = json.loads((run / "score/manifest.json").read_text())
    (run / "score/manifest.json").unlink()
    pending = {"config_hash": manifest["config_hash"], "keys": manifest["keys"]}
    (run / "score/pending.json").write_text(json.dumps(pending))
    kept = (run / "score/lora-s0.jsonl").stat().st_mtime_ns
    subprocess.run([*CLI, "run", str(exp)], check=True, env=env, cwd=REPO, timeout=600)
    assert (run / "score/lora-s1.jsonl").exists()
    assert (run / "score/lora-s0.jsonl").stat().st_mtime_ns == kept
    # a config that grows (one more seed) keeps every measured target's files, the per-layer
    # ones included, and measures only the new seed (base copied from its twin)
    kept = {f.name: f.stat().st_mtime_ns for f in (run / "score").glob("*-s[01]*.jsonl")}
    assert len(kept) == 12  # 6 targets x (records, layers)
    exp.write_text(exp.read_text().replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    subprocess.run([*CLI, "run", str(exp)], check=True, env=env, cwd=REPO, timeout=900)
    assert {n: (run / "score" / n).stat().st_mtime_ns for n in kept} == kept
    assert (run / "score/base-s2.layers.jsonl").exists()
    out = tmp_path / "pooled"
    subprocess.run(
        [*CLI, "implicit-report", str(run), "--out", str(out)], check=True, env=env, cwd=REPO
    )
    assert "Effect gate" in (out / "implicit.md").read_text()
    assert (out / "implicit.png").stat().st_size > 1000
    # the committed measurements give the same report with the run gone (a later checkout)
    shutil.move(run, tmp_path / "gone")
    again = tmp_path / "again"
    subprocess.run(
        [*CLI, "implicit-report", str(out / "implicit-measurements.csv.gz"), "--out", str(again)],
        check=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert (again / "implicit.csv").read_text() == (out / "implicit.csv").read_text()
    shutil.move(tmp_path / "gone", run)
    shutil.rmtree(run / "train")


def test_truths_and_the_preserve_removal_on_the_real_stack(small_task, tmp_path):
    """The command wrote the teacher's change subspaces (16 ordered directions per layer, over
    training inputs and unrelated prompts); GRASP's preserve removal given that truth trains on
    the distillation rows (scale from the plain run, penalty logged) and is measured."""
    from grasp_bench.model.directions import load_directions

    tasks, env = small_task
    folder = tasks / "grasp_implicit/pirate-wide"
    for name in ("change.safetensors", "change_unrelated.safetensors"):
        dirs = load_directions(folder / name)
        assert sorted(dirs) == list(range(10, 30))  # no change before the first write
        gram = dirs[20].T @ dirs[20]
        assert gram.shape == (16, 16) and float((gram - torch.eye(16)).abs().max()) < 1e-4
    truths = json.loads((folder / "truths.json").read_text())
    assert {r["layer"] for r in truths["layers"] if "v_in_change_k8" in r} == set(range(10, 30))
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: preserve-smoke\noutput_dir: {tmp_path / 'runs'}\nmodel: default\n"
        "task: implicit-pirate-wide\nseeds: [0]\nmethods:\n  - lora\n"
        f"  - name: grasp-preserve\n    recipe: {REPO / 'baselines/grasp.yaml'}\n"
        f"    overrides: {{directions_file: {folder / 'change.safetensors'}, k: 4,"
        " project: preserve}\n"
        "data: {n_train: 16, n_eval_task: 8, n_eval_drift: 8}\n"
        "train: {steps: 3, batch_size: 4, lr: 1.0e-3, warmup_steps: 1}\n"
    )
    subprocess.run([*CLI, "run", str(exp)], check=True, env=env, cwd=REPO, timeout=900)
    run = tmp_path / "runs" / "preserve-smoke"
    card = json.loads((run / "train/grasp-preserve-s0/adapter/method_card.json").read_text())
    # one scale per layer the directions file holds (layers before the first write carry none)
    assert sorted(map(int, card["before_training"]["preserve_scale"])) == list(range(10, 30))
    assert card["before_training"]["directions"]["k"] == 4
    assert card["after_training"]["preserve_penalty_first5"] >= 0
    records = [json.loads(x) for x in (run / "score/scores.jsonl").read_text().splitlines()]
    assert {r["target"] for r in records} == {"lora-s0", "grasp-preserve-s0"}


def test_the_command_adds_the_base_answers_to_a_teacher_built_before_them(small_task):
    """A teacher folder from before ``base_answers.safetensors`` existed gets it from
    ``build-implicit`` without a rebuild: the same greedy answers the build wrote, and the
    teacher's own files untouched."""
    from safetensors.torch import load_file

    tasks, env = small_task
    folder = tasks / "grasp_implicit/pirate-wide"
    path = folder / "base_answers.safetensors"
    written = load_file(str(path))
    assert written["tokens"].shape[0] == 8 and int(written["lengths"].min()) > 0
    assert bool((written["base.answer_logprob"] < 0).all())
    # the teacher's own log p of the base model's answers: the scale of a student's base_fit
    from grasp_bench.studies.implicit import teacher_base_fit

    assert written["teacher.answer_logprob"].shape == (8,)
    assert teacher_base_fit(folder) < 0  # the teacher is less likely to say what the base says
    targets_before = (folder / "targets.safetensors").stat().st_mtime_ns
    path.unlink()
    cmd = [*CLI, "build-implicit", "pirate-wide", "--out", str(folder.parent)]
    out = subprocess.run(cmd, check=True, env=env, cwd=REPO, timeout=600, capture_output=True,
                         text=True).stdout  # fmt: skip
    assert "built already" in out and "base_answers.safetensors" in out
    again = load_file(str(path))
    assert torch.equal(again["tokens"], written["tokens"])
    assert torch.allclose(again["base.answer_logprob"], written["base.answer_logprob"], atol=1e-3)
    assert (folder / "targets.safetensors").stat().st_mtime_ns == targets_before
