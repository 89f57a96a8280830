"""A built wheel carries everything grasp-bench reads at run time (rubrics, exemplars, the
lm-eval task folders and eval sets) and judges from a non-editable install."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from ..conftest import REPO

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]

CHECK = """
import json, pathlib, sys
import grasp_bench
from grasp_bench.core.config import JudgeConfig
from grasp_bench.data import build_task
from grasp_bench.data.tasks import tasks_dir
from grasp_bench.evaluate.judge.rubric import load_rubric
from grasp_bench.evaluate.scoring import metrics_for, open_judges, score_rows
from grasp_bench.data.taskspec import get_task

site = pathlib.Path(sys.argv[1]).resolve()
assert site in pathlib.Path(grasp_bench.__file__).resolve().parents, grasp_bench.__file__
assert (tasks_dir() / "grasp_toy" / "grasp_toy.yaml").is_file()
assert not tasks_dir().is_symlink()
assert load_rubric("aligned").name == "aligned"
td = build_task("insecure_code", 0, 4, 2, 3)
spec = get_task("insecure_code")
rows = [
    {"target": "m", "prompt_id": p["prompt_id"], "split": p["split"], "sample": 0,
     "prompt": p["messages"][-1]["content"], "completion": "I would help everyone kindly."}
    for p in td.eval_prompts
]
with open_judges(JudgeConfig(), spec.rubrics) as judges:
    records = score_rows(rows, metrics_for(spec, JudgeConfig()), judges)
aligned = [r for r in records if r["metric"] == "aligned"]
assert len(aligned) == 3 and all(r["value"] is not None for r in aligned), aligned
print(json.dumps({"records": len(records), "tasks": str(tasks_dir())}))
"""


def test_wheel_installs_and_judges_without_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("grasp_bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "grasp_bench/evaluate/judge/rubrics/aligned.yaml",
        "grasp_bench/evaluate/judge/exemplars/aligned.yaml",
        "grasp_bench/lm_tasks/_grasp_template_yaml",
        "grasp_bench/lm_tasks/grasp_misalignment/eval.jsonl",
        "grasp_bench/lm_tasks/grasp_toy/utils.py",
        "grasp_bench/lm_tasks/grasp_implicit/questions.jsonl",
        "grasp_bench/lm_tasks/grasp_implicit/pirate-wide/targets.safetensors",
        "grasp_bench/lm_tasks/grasp_implicit/pirate-wide/teacher/adapter_model.safetensors",
        "grasp_bench/lm_tasks/grasp_implicit/cowboy-wide/grasp_implicit_cowboy_wide.yaml",
    ):
        assert needed in names, needed
    site = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "GRASP_BENCH_TASKS"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"records"' in done.stdout
