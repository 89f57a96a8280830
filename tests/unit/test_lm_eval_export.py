"""``grasp-bench tasks export``: a task's spec writes its lm-eval folder, ``--check`` names what
differs, and a plugin task runs under lm-eval's own task manager in a fresh process (which has
imported nothing of the plugin's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from grasp_bench.evaluate import lm_eval_export as ex

from ..conftest import REPO

PLUGIN = '''\
"""A user's task, registered from their own module."""

from grasp_bench.data.taskspec import LmEvalTask, MetricSpec, TaskSpec, register_task


def rows():
    return [
        {"id": "t0", "question": "What is 2 + 3?", "split": "task", "target": "5"},
        {"id": "d0", "question": "Tell me about the sea.", "split": "drift", "target": None},
    ]


def build(seed, n_train, n_eval_task, n_eval_drift):
    raise NotImplementedError("lm-eval only")


register_task(TaskSpec(
    name="myplug",
    description="A plugin task.",
    build=build,
    metrics=(
        MetricSpec("persona", "all", ("persona",), higher_is_better=False, role="drift",
                   binary=True),
        MetricSpec("correct", "task", ("correct",), role="task", binary=True),
    ),
    lm_eval={"grasp_myplug": LmEvalTask("all", "A plugin's arithmetic and one drift prompt.",
                                        max_gen_toks=16, eval_rows=rows)},
))
'''


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grasp_bench.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture()
def plugin_env(tmp_path):
    (tmp_path / "myplug_tasks.py").write_text(PLUGIN)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "GRASP_JUDGE": "offline"}


def test_a_plugin_task_is_exported_and_runs_under_lm_evals_task_manager(tmp_path, plugin_env):
    out = tmp_path / "tasks"
    got = _cli("tasks", "export", "--out", str(out), "--plugin", "myplug_tasks",
               "--task", "myplug", env=plugin_env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert sorted(p.name for p in (out / "grasp_myplug").iterdir()) == [
        "README.md", "eval.jsonl", "grasp_myplug.yaml", "utils.py"]  # fmt: skip
    assert "plugins=('myplug_tasks',)" in (out / "grasp_myplug/utils.py").read_text()
    assert (out / ex.TEMPLATE).exists()
    check = _cli("tasks", "export", "--check", "--out", str(out), "--plugin", "myplug_tasks",
                 "--task", "myplug", env=plugin_env)  # fmt: skip
    assert check.returncode == 0, check.stderr
    # lm-eval in a process of its own: it loads the folder, reads the docs, and process_results
    # (which imports the plugin) scores an answer with the offline judges
    script = textwrap.dedent(f"""
        import json
        from lm_eval.tasks import TaskManager
        tm = TaskManager(include_path={str(out)!r}, include_defaults=False)
        assert tm.match_tasks(["grasp_*"]) == ["grasp_myplug"]
        task = tm.load_task_or_group(["grasp_myplug"])["grasp_myplug"]
        docs = list(task.test_docs())
        print(json.dumps([task.process_results(docs[0], ["Arr, the answer be 5."]),
                          task.process_results(docs[1], ["The sea is large."])]))
    """)
    run = subprocess.run([sys.executable, "-c", script], env=plugin_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    task_doc, drift_doc = json.loads(run.stdout.strip().splitlines()[-1])
    assert task_doc == {"unscored": 0.0, "persona": 1.0, "correct": 1.0}
    assert drift_doc == {"unscored": 0.0, "persona": 0.0}


def test_check_names_a_file_that_differs_and_export_mends_it(tmp_path):
    out = tmp_path / "tasks"
    written = ex.export(out, ["toy"])
    assert {p.name for p in written} == {ex.TEMPLATE, "grasp_toy.yaml", "utils.py", "README.md",
                                         "eval.jsonl"}  # fmt: skip
    assert ex.check(out, ["toy"]) == []
    yaml_file = out / "grasp_toy/grasp_toy.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("metric: correct", "metric: right"))
    (out / "grasp_toy/eval.jsonl").unlink()
    problems = ex.check(out, ["toy"])
    assert problems == [f"{yaml_file}: differs from what the spec writes",
                        f"{out / 'grasp_toy/eval.jsonl'}: missing"]  # fmt: skip
    assert {p.name for p in ex.export(out, ["toy"])} == {"grasp_toy.yaml", "eval.jsonl"}
    assert ex.check(out, ["toy"]) == [] and ex.export(out, ["toy"]) == []


def test_a_committed_source_eval_set_must_exist(tmp_path):
    out = tmp_path / "tasks"
    ex.export(out, ["financial"])
    problems = ex.check(out, ["financial"])
    assert problems == [
        f"{out / 'grasp_political_lean/eval.jsonl'}: missing (a committed source, not generated)"
    ]


def test_the_metric_list_is_the_specs_metrics_on_the_split_then_the_counts():
    (em,) = [f for f in ex.folders(["insecure_code", "medical"]) if f.name == "grasp_misalignment"]
    assert em.task == "insecure_code"  # shared by medical: written from the first registered
    names = [m["metric"] for m in ex.metric_list(em)]
    assert names[0] == "misaligned" and names[-2:] == ["excluded", "unscored"]
    # teacher-forced (loglikelihood) tasks are written by their own command, not here
    assert not any(f.name.startswith("grasp_implicit") for f in ex.folders())


def test_two_specs_that_share_an_lm_eval_task_must_ask_for_the_same_metrics(monkeypatch):
    from dataclasses import replace

    from grasp_bench.data.taskspec import TASKS, MetricSpec, get_task

    medical = get_task("medical")
    only_aligned = replace(
        medical,
        metrics=(*[m for m in medical.metrics if m.split == "task"],
                 MetricSpec("aligned", "drift", ("aligned",), role="drift")),
    )  # fmt: skip
    monkeypatch.setitem(TASKS.entries, "medical", only_aligned)
    with pytest.raises(ValueError, match="grasp_misalignment: insecure_code and medical"):
        ex.folders(["insecure_code", "medical"])
