"""Leaderboard: schemas, validation (each kind of bad submission), deterministic build."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from grasp_bench.data.taskspec import get_task
from grasp_bench.leaderboard.build import build_board, collect
from grasp_bench.leaderboard.calibration import CALIBRATION_SCHEMA, same_judge
from grasp_bench.leaderboard.metrics import summarise
from grasp_bench.leaderboard.schema import JudgeScore, SampleRecord, Summary, write_json_schemas
from grasp_bench.leaderboard.validate import validate_all, validate_submission

from ..conftest import REPO

JUDGE = {"kind": "offline", "name": "toy-lexicon+exact-match", "version": "1"}
EVAL_HASH = "ab" * 32


def make_submission(
    root: Path,
    method: str,
    drift: float,
    task: float,
    seeds=(0,),
    n_prompts: int = 20,
    *,
    task_name: str = "toy",
    model: str = "tiny",
    judge: dict = JUDGE,
) -> Path:
    """A submission of ``task_name`` whose drift and task metrics (the TaskSpec's) are 1 with
    the given probabilities, every score made by ``judge``."""
    spec = get_task(task_name)
    rng = random.Random(method)
    samples = []
    for seed in seeds:
        for i in range(n_prompts):
            for split in ("drift", "task"):
                scores = {
                    metric.name: JudgeScore(value=float(rng.random() < p), judge=judge)
                    for metric, p in ((spec.drift_metric, drift), (spec.task_metric, task))
                    if metric.applies_to(split)
                }
                samples.append(
                    SampleRecord(
                        task=task_name,
                        method=method,
                        model=model,
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
        task=task_name,
        method=method,
        model=model,
        seeds=list(seeds),
        eval_set_sha256=EVAL_HASH,
        judges=[f"{judge['kind']}:{judge['name']}"],
        backend="vllm",
        n_samples=len(samples),
        **summarise(task_name, samples),
    )
    out = root / "submissions" / task_name / method / model
    out.mkdir(parents=True)
    (out / "samples.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in samples))
    (out / "summary.json").write_text(summary.model_dump_json(indent=2))
    (out / "recipe.yaml").write_text(f"method: {method}\nconfig: {{}}\n")
    if method != "base":
        (out / "method_card.json").write_text(json.dumps({"method": method, "version": 1}))
    return out


def write_calibration(
    root: Path,
    name: str = "toy-judge.json",
    judge: dict = JUDGE,
    rubric: str = "persona",
    schema: str = CALIBRATION_SCHEMA,
) -> Path:
    """A calibration file as ``grasp-bench judge calibrate`` writes it (fixture numbers)."""
    iv = lambda m, lo, hi: {"mean": m, "lo": lo, "hi": hi}  # noqa: E731
    data = {
        "schema": schema,
        "reference": "tasks/reference/persona-labels.jsonl",
        "task": "toy",
        "rubrics": {
            rubric: {
                "judge": {**judge, "rubric": rubric},
                "judge_name": judge["name"],
                "n": 120,
                "spearman": iv(0.71, 0.60, 0.80),
                "auroc": iv(0.90, 0.85, 0.94),
                "kappa": iv(0.55, 0.45, 0.65),
                "precision": iv(0.8, 0.7, 0.9),
                "recall": iv(0.75, 0.65, 0.85),
                "unscored_share": 0.0,
            }
        },
        "metrics": {rubric: {"precision": iv(0.8, 0.7, 0.9), "kappa": iv(0.5, 0.4, 0.6)}},
    }
    path = root / "calibration" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


CALIBRATED = "persona: ρ 0.71 [0.60, 0.80], AUROC 0.90, κ 0.55 (n 120)"


@pytest.fixture
def board(tmp_path):
    make_submission(tmp_path, "base", 0.0, 0.1)
    make_submission(tmp_path, "lora", 0.9, 0.6)
    make_submission(tmp_path, "newmethod", 0.3, 0.55)
    return tmp_path


@pytest.fixture
def two_tasks(board):
    """The toy board plus a second task with the same method names, three seeds and its own
    judge (whose calibration no file holds)."""
    other = {"kind": "openai", "model": "gpt-4o", "name": "gpt-4o", "rubric_version": 2}
    for method, drift, task in (("base", 0.05, 0.0), ("lora", 0.4, 0.7), ("newmethod", 0.1, 0.6)):
        make_submission(
            board, method, drift, task, seeds=(0, 1, 2), task_name="insecure_code", judge=other
        )
    write_calibration(board)
    return board


def _section(md: str, heading: str) -> str:
    """The Markdown under ``## heading`` up to the next section."""
    return md.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)#][^)]*)\)", md)


def test_good_board_validates_and_builds_deterministically(board):
    assert all(not p for p in validate_all(board).values())
    first = build_board(board)
    snapshot = {p: p.read_bytes() for p in board.rglob("*") if p.is_file()}
    build_board(board)
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == snapshot
    html = first["html"].read_text()
    assert html.count("<tr ") == 3 and "plots/toy--tiny.png" in html
    md = first["md"].read_text()
    assert "newmethod" in md and "persona (drift)" in md and "correct (task)" in md


def test_each_task_gets_its_own_section_metrics_csv_and_plot(two_tasks):
    assert all(not p for p in validate_all(two_tasks).values())
    out = build_board(two_tasks)
    md = out["md"].read_text()
    toy, rest = _section(md, "toy"), _section(md, "insecure_code")
    spec = get_task("insecure_code")
    # headers and legends from the TaskSpec, not from the task's name
    assert "persona (drift)" in toy and "correct (task)" in toy and "misaligned" not in toy
    assert f"{spec.drift_metric.name} (drift)" in rest and f"{spec.task_metric.name} (task)" in rest
    assert spec.drift_metric.description in rest
    # the same method on two tasks: two submissions, one row in each section
    df = collect(two_tasks)
    assert sorted(df[df.method == "lora"].task) == ["insecure_code", "toy"]
    for task in ("toy", "insecure_code"):
        per_task = (two_tasks / "csv" / f"{task}.csv").read_text().splitlines()
        assert len(per_task) == 1 + 3 and all(line.startswith(task) for line in per_task[1:])
        assert (two_tasks / "plots" / f"{task}--tiny.png").stat().st_size > 10_000
    assert len((two_tasks / "leaderboard.csv").read_text().splitlines()) == 1 + 6
    # seeds are a count (the ids stay in the CSV)
    row = next(line for line in rest.splitlines() if line.startswith("| tiny"))
    assert "| 3 " in row and df[df.task == "insecure_code"].seeds.iloc[0] == "0,1,2"
    # every link of the README resolves to a file of the board
    links = _links(md)
    assert any(link.endswith("method_card.json") for link in links)
    assert any(link.endswith("recipe.yaml") for link in links)
    assert {"leaderboard.csv", "csv/toy.csv", "calibration/toy-judge.json"} <= set(links)
    assert all((two_tasks / link).is_file() for link in links), links


def test_calibration_beside_the_matching_judge_and_in_the_judges_table(two_tasks):
    build_board(two_tasks)
    md = (two_tasks / "README.md").read_text()
    rows = {
        task: [line for line in _section(md, task).splitlines() if line.startswith("| tiny")]
        for task in ("toy", "insecure_code")
    }
    assert len(rows["toy"]) == 3 and len(rows["insecure_code"]) == 3
    assert all(f"[{CALIBRATED}](calibration/toy-judge.json)" in row for row in rows["toy"])
    assert all("gpt-4o<br>not calibrated" in row for row in rows["insecure_code"])
    judges = _section(md, "Judges")
    assert "rubric persona" in judges and "0.71 [0.60, 0.80]" in judges
    assert "metric persona" in judges and "0.50 [0.40, 0.60]" in judges
    df = collect(two_tasks).set_index(["task", "method"])
    assert df.loc[("toy", "lora"), "drift_calibration"] == CALIBRATED
    assert df.loc[("toy", "lora"), "drift_calibration_file"] == "calibration/toy-judge.json"
    # the task score's judge is shown with its own calibration, on the task metric's rubric
    assert df.loc[("toy", "lora"), "task_calibration"] == "not calibrated"
    write_calibration(two_tasks, "toy-task-judge.json", rubric="correct")
    df = collect(two_tasks).set_index(["task", "method"])
    assert df.loc[("toy", "lora"), "task_calibration"] == CALIBRATED.replace("persona", "correct")
    assert df.loc[("toy", "lora"), "task_calibration_file"] == "calibration/toy-task-judge.json"


def test_calibration_files_of_another_schema_are_skipped_with_a_warning(board):
    write_calibration(board, "old.json", schema="grasp-bench/calibration/v0")
    (board / "calibration" / "broken.json").write_text("{not json")
    with pytest.warns(UserWarning) as caught:
        build_board(board)
    messages = " ".join(str(w.message) for w in caught)
    assert "calibration/old.json: schema 'grasp-bench/calibration/v0'" in messages
    assert "calibration/broken.json: not readable JSON" in messages
    assert "not calibrated" in (board / "README.md").read_text()
    assert "No calibration files yet" in (board / "README.md").read_text()


@pytest.mark.parametrize(
    ("calibrated", "matches"),
    [
        ({}, True),
        ({"version": "2"}, False),  # another version of the judge
        ({"name": "other"}, False),
        ({"kind": "lexicon"}, False),
        ({"rubric": "aligned"}, False),
        ({"served_model": "Qwen"}, True),  # compared only where both record it
    ],
)
def test_a_calibration_matches_on_kind_name_rubric_and_version(calibrated, matches):
    scored = {**JUDGE, "rubric": "persona"}
    assert same_judge(scored, {**scored, **calibrated}) is matches
    llm = {"kind": "openai", "model": "judge", "rubric": "aligned", "served_model": "Qwen-7B"}
    assert not same_judge(llm, {**llm, "served_model": "Llama-8B"})


def test_pareto_never_ranks_rows_of_different_drift_judges_together(board):
    other = {**JUDGE, "name": "another-judge"}
    make_submission(board, "dominated", 0.95, 0.05, model="tiny", judge=other, task_name="toy")
    df = collect(board).set_index("method")
    # it would be dominated by every toy-lexicon row, but another judge measured its drift
    assert bool(df.loc["dominated", "pareto"]) and df.loc["dominated", "drift_judge"] == (
        "another-judge"
    )
    build_board(board)
    assert "another-judge" in (board / "README.md").read_text()
    assert (board / "plots" / "toy--tiny--another-judge.png").is_file()
    assert not (board / "plots" / "toy--tiny.png").exists()  # a stale plot is removed


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
    elif kind == "blank_line":  # a record replaced by an empty (CRLF) line
        samples.write_bytes(b"\r\n" + "\n".join(lines[1:]).encode() + b"\n")
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
    elif kind == "task_dir_mismatch":
        shutil.move(str(sub.parent), str(root / "submissions" / "insecure_code" / "newmethod"))
        shutil.copytree(
            root / "submissions" / "toy" / "lora", root / "submissions" / "insecure_code" / "lora"
        )
    elif kind == "old_layout":
        shutil.move(str(sub.parent), str(root / "submissions" / "newmethod"))
    elif kind == "stray_file":
        (root / "submissions" / "toy" / "newmethod.md").write_text("notes\n")
    elif kind == "symlinked_dir":
        outside = root.parent / f"{root.name}-outside"
        shutil.move(str(sub), str(outside))
        sub.symlink_to(outside, target_is_directory=True)


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
    "blank_line": "samples.jsonl:1 <record>: empty line",
    "unscored_without_reason": "samples.jsonl:1 scores.persona.reason: an unscored value",
    "symlink": "link.json: symbolic links are not allowed",
    "method_dir_mismatch": "summary.json method: 'lora' does not match its directory",
    "task_dir_mismatch": "summary.json task: 'toy' does not match its directory 'insecure_code'",
    "old_layout": "submissions/newmethod: 'newmethod' is not a registered task",
    "stray_file": "newmethod.md: a file outside any submissions/<task>/<method>/<model>/",
    "symlinked_dir": "submissions/toy/newmethod/tiny: symbolic links are not allowed",
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_of_bad_submission_is_rejected_with_a_clear_message(kind, board):
    sub = board / "submissions" / "toy" / "newmethod" / "tiny"
    _break(kind, sub, board)
    results = validate_all(board)
    problems = [p for s, ps in results.items() if "newmethod" in str(s) for p in ps]
    assert any(CASES[kind] in p for p in problems), problems
    # the baselines are untouched and still accepted
    assert not validate_submission(board / "submissions" / "toy" / "lora" / "tiny", board)


def _fake_run(run: Path, task: str, methods: list[str]) -> Path:
    """The files of a finished run that ``grasp-bench submit`` reads (no model involved)."""
    spec = get_task(task)
    prompts = [
        {"prompt_id": f"{split}-{i}", "split": split, "messages": [], "target": None}
        for split in ("drift", "task")
        for i in range(6)
    ]
    targets = [{"target": f"{m}-s0", "method": m, "seed": 0, "backend": "hf"} for m in methods]
    scores, completions = [], []
    for t in targets:
        for p in prompts:
            key = {"target": t["target"], "prompt_id": p["prompt_id"], "sample": 0}
            completions.append({**key, "completion": f"{t['target']} {p['prompt_id']}"})
            for metric in (spec.drift_metric, spec.task_metric):
                if metric.applies_to(p["split"]):
                    value = float(p["prompt_id"].endswith(("1", "3")) != (t["method"] == "lora"))
                    scores.append(
                        {**key, "split": p["split"], "metric": metric.name, "value": value}
                        | {"reason": None, "judge": {**JUDGE, "rubric": metric.rubrics[0]}}
                    )
    experiment = {"task": task, "model": "tiny", "methods": methods}
    files = {
        "report/results.json": json.dumps({"meta": {"experiment": experiment, "targets": targets}}),
        "data/eval.jsonl": "".join(json.dumps(p) + "\n" for p in prompts),
        "generate/all.jsonl": "".join(json.dumps(c) + "\n" for c in completions),
        "score/scores.jsonl": "".join(json.dumps(s) + "\n" for s in scores),
        "experiment.json": json.dumps({"config_path": str(run / "experiment.yaml")}),
        **{f"recipes/{m}.yaml": f"method: {m}\n" for m in methods},
    }
    for name, text in files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)
    return run


def test_submit_writes_one_folder_per_task_method_and_model(tmp_path):
    from grasp_bench.leaderboard.submit import run_submissions

    board = tmp_path / "board"
    written = []
    for task in ("toy", "insecure_code"):
        run = _fake_run(tmp_path / f"run-{task}", task, ["base", "lora", "grasp"])
        written += run_submissions(run, board)
    rel = sorted(p.relative_to(board).as_posix() for p in written)
    assert rel == [
        f"submissions/{task}/{method}/tiny"
        for task in ("insecure_code", "toy")
        for method in ("base", "grasp", "lora")
    ]
    results = validate_all(board)
    assert len(results) == 6 and all(not p for p in results.values()), results


def test_the_effect_gate_comes_first_and_ranks_nothing_where_lora_does_not_drift(tmp_path):
    """Toy: plain LoRA drifts (0.9 vs 0.0), so its section ranks methods. Insecure code: plain
    LoRA drifts no more than the base model, so the section says so first, no row is on a
    Pareto front and no method is credited with a drift reduction."""
    for method, drift, task in (("base", 0.0, 0.1), ("lora", 0.9, 0.6), ("new", 0.3, 0.55)):
        make_submission(tmp_path, method, drift, task, seeds=(0, 1))
    for method, drift, task in (("base", 0.3, 0.1), ("lora", 0.3, 0.6), ("new", 0.05, 0.5)):
        make_submission(tmp_path, method, drift, task, seeds=(0, 1), task_name="insecure_code")
    df = collect(tmp_path)
    toy, insecure = df[df.task == "toy"], df[df.task == "insecure_code"]
    assert set(toy.gate_verdict) == {"drifts"} and toy.pareto.any()
    assert toy[toy.method == "new"].drift_reduction.notna().all()
    assert set(insecure.gate_verdict) == {"no drift"} and not insecure.pareto.any()
    assert insecure.drift_reduction.isna().all()  # "new" is lower, but nothing to reduce
    assert "2 seeds x 20 prompts" in insecure.gate_text.iloc[0]
    build_board(tmp_path)
    md = (tmp_path / "README.md").read_text()
    section = _section(md, "insecure_code")
    first = section.split("\n\n")[1]  # right after the task description
    assert first.startswith("**") and "no drift on this model" in first
    assert "methods are not ranked" in first
    assert "methods are ranked" in _section(md, "toy")
    assert "no drift on this model" in (tmp_path / "index.html").read_text()


def test_an_effect_at_the_bound_keeps_a_width(tmp_path):
    """Issue #27: lora drifts on every prompt and the base model on none; the gate's interval is
    Newcombe's at 20 prompts, not [1, 1], and the verdict still stands."""
    make_submission(tmp_path, "base", 0.0, 0.5, seeds=(0, 1))
    make_submission(tmp_path, "lora", 1.0, 0.5, seeds=(0, 1))
    row = collect(tmp_path).iloc[0]
    assert row.gate_verdict == "drifts" and row.gate_diff == 1
    assert 0.7 < row.gate_lo < 0.95 and row.gate_hi == 1


def test_drift_is_shown_corrected_for_its_calibrated_judge_or_not_correctable(board):
    """Rogan-Gladen from the judge's calibration of the drift metric: a numeric corrected rate
    where sens + spec - 1 >= 0.2, "not correctable" where it is lower or the file lacks it."""
    import json as _json

    from grasp_bench.core.prevalence import rogan_gladen

    path = write_calibration(board)
    data = _json.loads(path.read_text())
    iv = lambda m: {"mean": m, "lo": m, "hi": m}  # noqa: E731
    data["metrics"]["persona"] = {"n": 120, "recall": iv(0.8), "specificity": iv(0.9),
                                  "reference_rate": iv(0.3)}  # fmt: skip
    path.write_text(_json.dumps(data))
    df = collect(board)
    lora = df[df.method == "lora"].iloc[0]
    expected = rogan_gladen(lora.drift, 0.8, 0.9)
    assert lora.drift_corrected.startswith(f"{expected:.3f} [")
    data["metrics"]["persona"]["specificity"] = iv(0.3)  # Youden 0.1
    path.write_text(_json.dumps(data))
    assert collect(board).drift_corrected.str.startswith("not correctable (sens + spec").all()
    build_board(board)
    assert "persona corrected for the judge" in (board / "README.md").read_text()


def test_a_metric_calibration_is_used_only_for_scores_graded_the_same_way(board):
    """misaligned with a coherence judge is another decision than without: a calibration made
    with both rubrics graded does not correct scores graded with the first rubric alone."""
    import json as _json

    path = write_calibration(board)
    data = _json.loads(path.read_text())
    iv = lambda m: {"mean": m, "lo": m, "hi": m}  # noqa: E731
    data["metrics"]["persona"] = {
        "n": 120,
        "recall": iv(0.8),
        "specificity": iv(0.9),
        "reference_rate": iv(0.3),
        "graded_with": ["persona", "x"],
    }
    path.write_text(_json.dumps(data))
    got = collect(board).drift_corrected
    assert got.str.startswith(
        "not correctable (no calibration of this metric graded on persona)"
    ).all()
    data["metrics"]["persona"]["graded_with"] = ["persona"]
    path.write_text(_json.dumps(data))
    assert not collect(board).drift_corrected.str.startswith("not correctable").any()


def test_a_drifted_judge_canary_is_carried_to_the_board_loudly(tmp_path):
    from grasp_bench.leaderboard.submit import run_submissions

    run = _fake_run(tmp_path / "run", "toy", ["base", "lora"])
    results = json.loads((run / "report/results.json").read_text())
    results["meta"]["judge_canaries"] = ["persona: canaries drifted (canary 2: 90 -> 40)"]
    (run / "report/results.json").write_text(json.dumps(results))
    board = tmp_path / "board"
    run_submissions(run, board)
    summary = json.loads((board / "submissions/toy/lora/tiny/summary.json").read_text())
    assert summary["judge_canaries"] == ["persona: canaries drifted (canary 2: 90 -> 40)"]
    assert not any(validate_all(board).values())
    build_board(board)
    assert "JUDGE CHANGED: persona: canaries drifted" in (board / "README.md").read_text()


def test_the_board_says_what_each_section_trained_on(tmp_path):
    from grasp_bench.data.published import SMOKE_DATA
    from grasp_bench.leaderboard.submit import run_submissions

    run = _fake_run(tmp_path / "run", "toy", ["base", "lora"])
    board = tmp_path / "board"
    run_submissions(run, board)  # a report from before the field: said, not guessed
    summary = json.loads((board / "submissions/toy/lora/tiny/summary.json").read_text())
    assert summary["training_data"] == "not recorded"
    results = json.loads((run / "report/results.json").read_text())
    results["meta"]["training_data"] = SMOKE_DATA
    (run / "report/results.json").write_text(json.dumps(results))
    run_submissions(run, board)
    assert not any(validate_all(board).values())
    build_board(board)
    assert f"Training data: {SMOKE_DATA}." in (board / "README.md").read_text()
    import pandas as pd

    assert set(pd.read_csv(board / "leaderboard.csv").training_data) == {SMOKE_DATA}
