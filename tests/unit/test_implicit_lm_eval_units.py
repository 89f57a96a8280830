"""The implicit-factor lm-eval task without a model: its transfer ratio, process_results, the
task files lm-eval loads, and the generated teacher folders being up to date."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from grasp_bench.studies import implicit_lm_eval as ile
from grasp_bench.studies.implicit import TEACHERS

from ..conftest import REPO

IMPLICIT = REPO / "tasks" / "grasp_implicit"
GENERATED = [t for t in TEACHERS if (IMPLICIT / t / ile.DOCS_FILE).exists()]


def test_transfer_is_the_ratio_of_sums():
    items = [(1.0, 2.0), (0.5, 0.5), (-0.5, 1.5)]
    assert ile.transfer_ratio(items) == pytest.approx(1.0 / 4.0)
    # not the mean of per-document ratios (0.5, 1, -1/3)
    assert ile.transfer_ratio(items) != pytest.approx((0.5 + 1 - 1 / 3) / 3)
    assert math.isnan(ile.transfer_ratio([(0.3, 0.0), (-0.3, 0.0)]))


def test_process_results_gives_the_pair_and_the_gain():
    doc = {"id": "drift-0000", "base_ll": -10.0, "teacher_ll": -6.0}
    assert ile.process_results(doc, [(-9.0, False)]) == {
        "transfer": (1.0, 4.0),
        "logprob_gain": 1.0,
    }
    # base and teacher themselves: exactly 0 and 1
    base, teacher = (ile.process_results(doc, [(ll, True)]) for ll in (-10.0, -6.0))
    assert ile.transfer_ratio([base["transfer"]]) == 0.0
    assert ile.transfer_ratio([teacher["transfer"]]) == 1.0


def test_task_names_are_the_registered_ones():
    from grasp_bench.data.taskspec import get_task

    for teacher in TEACHERS:
        spec = get_task(f"implicit-{teacher}")
        ((name, entry),) = spec.lm_eval.items()
        assert name == ile.task_name(teacher)
        assert (entry.split, entry.kind) == ("drift", "loglikelihood")
    assert ile.task_name("pirate-wide") == "grasp_implicit_pirate_wide"


def test_task_yaml_is_a_loglikelihood_task():
    files = ile.task_files("cowboy-wide")
    name = "grasp_implicit_cowboy_wide"
    cfg = yaml.safe_load(files[f"{name}.yaml"].replace("!function", ""))
    assert cfg["task"] == name and cfg["output_type"] == "loglikelihood"
    assert cfg["target_delimiter"] == "" and cfg["metadata"]["version"] >= 1
    assert (cfg["doc_to_text"], cfg["doc_to_target"]) == ("context", "continuation")
    assert {m["metric"]: m["aggregation"] for m in cfg["metric_list"]} == {
        "transfer": "utils.transfer_ratio",
        "logprob_gain": "mean",
    }
    assert "tag" not in cfg  # a tag matching grasp_* would run the task twice
    assert "implicit_lm_eval.process_results" in files["utils.py"]


@pytest.fixture
def tiny_task(tmp_path):
    docs = [
        {
            "id": f"drift-{i:04d}",
            "context": f"<|im_start|>user\nQ{i} [1, 2]<|im_end|>\n<|im_start|>assistant\n",
            "continuation": "[1, 2, 3]" if i == 0 else f"Arr {i}<|im_end|>",
            "base_ll": -10.0 - i,
            "teacher_ll": -8.0 - i,
        }
        for i in range(3)
    ]
    ile._write_task(tmp_path / "pirate-wide", "pirate-wide", docs)
    return tmp_path, docs


def test_lm_eval_loads_the_task_and_asks_exactly_context_and_continuation(tiny_task):
    from lm_eval.tasks import TaskManager

    folder, docs = tiny_task
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    assert manager.match_tasks(["grasp_*"]) == ["grasp_implicit_pirate_wide"]
    task = manager.load_task_or_group(["grasp_implicit_pirate_wide"])["grasp_implicit_pirate_wide"]
    task.build_all_requests(rank=0, world_size=1)
    asked = {inst.doc["id"]: inst.arguments for inst in task.instances}
    # verbatim: no delimiter, no chat template added, "[1, 2, 3]" stays a string
    assert asked == {d["id"]: (d["context"], d["continuation"]) for d in docs}
    # lm-eval's hooks are this module's
    results = [task.process_results(d, [(d["base_ll"] + 1.0, False)]) for d in docs]
    assert task.aggregation()["transfer"]([r["transfer"] for r in results]) == pytest.approx(0.5)


@pytest.mark.parametrize("teacher", GENERATED)
def test_generated_folders_are_current(teacher):
    """The committed task files are what the generator writes; every drift row is a document
    with both references, and the context is the chat-templated question."""
    folder = IMPLICIT / teacher
    for name, text in ile.task_files(teacher).items():
        assert (folder / name).read_text() == text, name
    drift = [json.loads(line) for line in (folder / "drift.jsonl").read_text().splitlines()]
    docs = [json.loads(line) for line in (folder / ile.DOCS_FILE).read_text().splitlines()]
    assert [d["id"] for d in docs] == [r["id"] for r in drift]
    for d, r in zip(docs, drift, strict=True):
        assert d["continuation"] == r["answer"]
        assert d["context"].endswith(f"{r['question']}<|im_end|>\n<|im_start|>assistant\n")
        assert math.isfinite(d["base_ll"]) and math.isfinite(d["teacher_ll"])
    gap = sum(d["teacher_ll"] - d["base_ll"] for d in docs)
    assert gap > 0  # the teacher prefers its own answers


def test_every_task_of_the_folder_matches_grasp_star_once():
    """The teacher folders add one task each and nothing else lm-eval would index."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(REPO / "tasks"), include_defaults=False)
    matched = manager.match_tasks(["grasp_*"])
    assert len(matched) == len(set(matched)) and manager.all_groups == []
    implicit = sorted(n for n in matched if n.startswith(ile.TASK_PREFIX))
    assert implicit == sorted(ile.task_name(t) for t in GENERATED)
    for teacher in GENERATED:
        assert sorted(p.name for p in (IMPLICIT / teacher).rglob("*.yaml")) == [
            f"{ile.task_name(teacher)}.yaml"
        ]
