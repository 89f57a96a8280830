"""Sweeps: grid expansion, run ids, skipping finished runs, errors, and the paper configs.

The pipeline is replaced by a recorder here (nothing is trained); the real pipeline under both
executors is tests/integration/test_sweep_ray.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.core.config import load_experiment
from grasp_bench.core.rundir import RunDir
from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.data.published import DATA_KINDS
from grasp_bench.run.pipeline import load_recipes
from grasp_bench.run.sweep import (
    DONE_MARKER,
    load_sweep,
    plan_sweep,
    publish,
    published_identity,
    run_fingerprint,
    run_identity,
    run_sweep,
)

from ..conftest import REPO
from .test_leaderboard import _fake_run

SWEEP = """\
name: grid
output_dir: {out}
tasks:
  - toy
  - {{name: insecure_code, data: {{n_eval_drift: 54}}, train: {{max_length: 384}}}}
models:
  - default
  - {{id: some-org/Some-Model-7B, label: some7b, tasks: [toy], train: {{batch_size: 2}}}}
seeds: [1, 0]
methods: [base, lora, grasp]
data: {{n_train: 40, n_eval_task: 4, n_eval_drift: 4}}
train: {{steps: 2, batch_size: 4}}
generation: {{max_tokens: 8}}
"""
SOME_MODEL = (
    "  - {{id: some-org/Some-Model-7B, label: some7b, tasks: [toy], train: {{batch_size: 2}}}}\n"
)


def write_sweep(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    """A sweep file in a folder whose baselines/ are the repository's (found by walking up)."""
    if not (tmp_path / "baselines").exists():
        (tmp_path / "baselines").symlink_to(REPO / "baselines")
    path = tmp_path / name
    path.write_text(text.format(out=tmp_path / "runs"))
    return path


def plan(path: Path):
    return plan_sweep(load_sweep(path))


@pytest.fixture
def grid(tmp_path) -> Path:
    return write_sweep(tmp_path, SWEEP)


def test_grid_expands_to_one_run_per_task_and_model(grid, tmp_path):
    runs = plan(grid)
    # toy x (default, some7b) + insecure_code x default (some7b is limited to toy)
    assert [(r.exp.config.task, r.exp.config.model) for r in runs] == [
        ("toy", "default"),
        ("toy", "some-org/Some-Model-7B"),
        ("insecure_code", "default"),
    ]
    assert [r.id.rsplit("-", 1)[0] for r in runs] == [
        "toy-default",
        "toy-some7b",
        "insecure_code-default",
    ]
    for r in runs:
        cfg = r.exp.config
        assert cfg.name == r.id
        assert cfg.seeds == [0, 1]  # every method and seed in the one run
        assert [m if isinstance(m, str) else m.name for m in cfg.methods] == [
            "base",
            "lora",
            "grasp",
        ]
        assert r.run.root == tmp_path / "runs" / "grid" / r.id
        assert cfg.data.n_train == 40 and cfg.generation.max_tokens == 8
    toy, some, code = (r.exp.config for r in runs)
    # shared < task < model, only the keys written
    assert (toy.data.n_eval_drift, toy.train.max_length, toy.train.batch_size) == (4, 256, 4)
    assert (some.train.batch_size, some.train.steps) == (2, 2)
    assert (code.data.n_eval_drift, code.train.max_length, code.train.batch_size) == (54, 384, 4)


def test_planning_resolves_no_model(grid, monkeypatch):
    """A hub id stays a string: planning never downloads, converts or even looks a model up."""

    def no(*args, **kwargs):
        raise AssertionError("planning must not resolve a model")

    monkeypatch.setattr("grasp_bench.model.models.resolve_model", no)
    monkeypatch.setattr("grasp_bench.model.models.prepare_default_model", no)
    assert len(plan(grid)) == 3


SHUFFLED = """\
generation: {{max_tokens: 8}}
train: {{batch_size: 4, steps: 2}}
data: {{n_eval_drift: 4, n_eval_task: 4, n_train: 40}}
methods: [grasp, base, lora]
seeds: [0, 1]
models:
  - {{train: {{batch_size: 2}}, tasks: [toy], label: some7b, id: some-org/Some-Model-7B}}
  - default
tasks:
  - {{train: {{max_length: 384}}, data: {{n_eval_drift: 54}}, name: insecure_code}}
  - toy
output_dir: {out}
name: grid
"""


def test_ids_do_not_depend_on_order(tmp_path):
    a = write_sweep(tmp_path, SWEEP, "a.yaml")
    b = write_sweep(tmp_path, SHUFFLED, "b.yaml")
    first = {(r.id, r.fingerprint) for r in plan(a)}
    assert len(first) == 3
    assert first == {(r.id, r.fingerprint) for r in plan(b)}
    assert first == {(r.id, r.fingerprint) for r in plan(a)}  # and across calls


@pytest.mark.parametrize(
    ("old", "new", "ids_change"),
    [
        # what the adapters are trained from: a new run directory
        ("train: {{steps: 2, batch_size: 4}}", "train: {{steps: 3, batch_size: 4}}", "all"),
        ("n_train: 40", "n_train: 48", "all"),
        ("data: {{n_eval_drift: 54}}", "data: {{n_eval_drift: 50}}", "insecure_code"),
        ("train: {{batch_size: 2}}", "train: {{batch_size: 3}}", "toy-some7b"),
        # what the pipeline redoes in place: same directory, new fingerprint (rerun)
        ("seeds: [1, 0]", "seeds: [0, 1, 2]", "none"),
        ("methods: [base, lora, grasp]", "methods: [base, lora]", "none"),
        ("generation: {{max_tokens: 8}}", "generation: {{max_tokens: 9}}", "none"),
    ],
)
def test_ids_change_with_training_inputs_fingerprints_with_everything(
    tmp_path, old, new, ids_change
):
    before = {r.id: r for r in plan(write_sweep(tmp_path, SWEEP, "a.yaml"))}
    assert old in SWEEP
    after = {r.id: r for r in plan(write_sweep(tmp_path, SWEEP.replace(old, new), "b.yaml"))}
    kept = set(before) & set(after)
    if ids_change == "none":
        assert kept == set(before)
        assert all(before[i].fingerprint != after[i].fingerprint for i in kept)
    elif ids_change == "all":
        assert not kept
    else:
        assert {i for i in before if i not in after} == {
            i for i in before if i.startswith(ids_change)
        }
        assert all(before[i].fingerprint == after[i].fingerprint for i in kept)


def test_judge_change_keeps_ids_and_changes_fingerprints(tmp_path):
    before = {r.id: r.fingerprint for r in plan(write_sweep(tmp_path, SWEEP, "a.yaml"))}
    judged = SWEEP + "judge: {{kind: openai, base_url: http://x/v1, rubrics: [coherent]}}\n"
    after = {r.id: r.fingerprint for r in plan(write_sweep(tmp_path, judged, "b.yaml"))}
    assert set(before) == set(after)
    assert all(before[i] != after[i] for i in before)
    concurrency = judged.replace("rubrics: [coherent]", "rubrics: [coherent], concurrency: 3")
    again = {r.id: r.fingerprint for r in plan(write_sweep(tmp_path, concurrency, "c.yaml"))}
    assert again == after  # how fast the judge is asked changes no result


# --------------------------------------------------------------------------------------------
# Running: the pipeline replaced by a recorder


class Recorder:
    """Stands in for ``run_experiment``: records the run, writes a report (or fails/dies)."""

    def __init__(self):
        self.calls: list[str] = []
        self.fail: set[str] = set()
        self.die: set[str] = set()

    def __call__(self, exp, progress=True, until="report"):
        name = exp.config.name
        self.calls.append(name)
        run = RunDir.of(exp.config.output_dir, name)
        if any(name.startswith(p) for p in self.die):
            raise KeyboardInterrupt  # the process is killed mid-run
        if any(name.startswith(p) for p in self.fail):
            raise RuntimeError("CUDA out of memory")
        methods = [m if isinstance(m, str) else m.name for m in exp.config.methods]
        _fake_run(run.root, exp.config.task, methods)
        return {"run_dir": run.root}


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr("grasp_bench.run.pipeline.run_experiment", rec)
    return rec


def sweep_once(path: Path):
    loaded = load_sweep(path)
    return run_sweep(loaded, plan_sweep(loaded), "local")


def statuses(index) -> dict[str, str]:
    return {k.rsplit("-", 1)[0]: e["status"] for k, e in index.entries.items()}


def test_finished_runs_are_skipped_and_indexed(grid, recorder):
    index = sweep_once(grid)
    assert len(recorder.calls) == 3
    data = json.loads(index.path.read_text())
    assert index.path == grid.parent / "runs" / "grid" / "sweep.json"
    assert {e["status"] for e in data["runs"]} == {"done"}
    for entry in data["runs"]:
        assert entry["report"] == str(Path(entry["run_dir"]) / "report" / "results.json")
        assert entry["config"]["name"] == entry["id"]
        marker = json.loads((Path(entry["run_dir"]) / DONE_MARKER).read_text())
        assert marker["fingerprint"] == entry["fingerprint"]

    recorder.calls.clear()
    index = sweep_once(grid)
    assert recorder.calls == []
    assert set(statuses(index).values()) == {"skipped"}


def test_a_run_without_its_done_marker_is_run_again(grid, recorder):
    """Killed after the report but before the marker, or killed mid-run: rerun (the pipeline
    resumes its finished stages); the runs that had finished are not touched."""
    first = sweep_once(grid)
    victim = next(e for e in first.entries.values() if e["task"] == "insecure_code")
    (Path(victim["run_dir"]) / DONE_MARKER).unlink()
    recorder.calls.clear()
    assert statuses(sweep_once(grid)) == {
        "toy-default": "skipped",
        "toy-some7b": "skipped",
        "insecure_code-default": "done",
    }
    assert recorder.calls == [victim["id"]]


def test_killed_sweep_resumes_where_it_stopped(grid, recorder):
    recorder.die = {"toy-some7b"}
    with pytest.raises(KeyboardInterrupt):
        sweep_once(grid)
    assert [c.rsplit("-", 1)[0] for c in recorder.calls] == ["toy-default", "toy-some7b"]
    recorder.calls.clear()
    recorder.die = set()
    index = sweep_once(grid)
    assert [c.rsplit("-", 1)[0] for c in recorder.calls] == [
        "toy-some7b",
        "insecure_code-default",
    ]
    assert statuses(index)["toy-default"] == "skipped"


def test_a_failed_run_is_recorded_the_others_go_on_and_it_is_retried(grid, recorder):
    recorder.fail = {"toy-some7b"}
    index = sweep_once(grid)
    assert len(recorder.calls) == 3
    assert statuses(index) == {
        "toy-default": "done",
        "toy-some7b": "failed",
        "insecure_code-default": "done",
    }
    failed = next(e for e in index.entries.values() if e["status"] == "failed")
    assert failed["error"] == "RuntimeError: CUDA out of memory"
    assert not (Path(failed["run_dir"]) / DONE_MARKER).exists()
    recorder.fail = set()
    recorder.calls.clear()
    assert statuses(sweep_once(grid))["toy-some7b"] == "done"
    assert recorder.calls == [failed["id"]]


def test_a_changed_fingerprint_reruns_in_the_same_directory(grid, recorder):
    first = sweep_once(grid)
    grid.write_text(grid.read_text().replace("seeds: [1, 0]", "seeds: [0, 1, 2]"))
    recorder.calls.clear()
    second = sweep_once(grid)
    assert sorted(recorder.calls) == sorted(first.entries)  # same ids, all rerun
    assert set(statuses(second).values()) == {"done"}


def test_finished_runs_are_submitted_and_the_board_built(tmp_path, recorder):
    # one model: the fake run names every model "tiny", and the board keys on the model
    path = write_sweep(tmp_path, SWEEP.replace(SOME_MODEL, ""))
    recorder.fail = {"insecure_code"}
    index = sweep_once(path)
    board = tmp_path / "board"
    assert publish(index, board) == []
    subs = sorted(p.relative_to(board).as_posix() for p in board.glob("submissions/*/*/*"))
    assert subs == [f"submissions/toy/{m}/tiny" for m in ("base", "grasp", "lora")]
    assert (board / "index.html").exists() and (board / "README.md").exists()
    data = json.loads(index.path.read_text())
    assert data["board"] == str(board)
    done = next(e for e in data["runs"] if e["status"] == "done")
    assert len(done["submissions"]) == 3


# --------------------------------------------------------------------------------------------
# The command


def test_cli_dry_run_lists_runs_and_runs_nothing(grid, recorder):
    result = CliRunner().invoke(app, ["sweep", str(grid), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.count("to run") == 3 and recorder.calls == []
    assert not (grid.parent / "runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "slurm"], "--executor slurm: local or ray"),
        (["--address", "ray://x:10001"], "--address is a Ray cluster's"),
    ],
)
def test_cli_rejects_bad_options(grid, args, message):
    result = CliRunner().invoke(app, ["sweep", str(grid), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_cli_runs_skips_and_fails_with_exit_status(grid, recorder):
    recorder.fail = {"toy-some7b"}
    result = CliRunner().invoke(app, ["sweep", str(grid), "--board", str(grid.parent / "b")])
    assert result.exit_code == 1, result.output
    assert "failed   toy-some7b" in result.output
    assert "RuntimeError: CUDA out of memory" in result.output


# --------------------------------------------------------------------------------------------
# Bad sweep files: the file, the line and the field


BAD = [
    ("  - toy\n", "  - toy\n  - medcal\n", ":5 tasks[1].name: unknown task 'medcal'"),
    ("seeds: [1, 0]", "seeds: [1, 0, 1]", ":9 seeds[2]: 1 is listed twice"),
    ("methods: [base, lora, grasp]", "methods: [base, lora, lora]", ":10 methods[2]: 'lora'"),
    ("methods: [base, lora, grasp]", "methods: [base, grasp]", "needs 'lora'"),
    ("tasks: [toy]", "tasks: [toy, medical]", ":8 models[1].tasks[1]: 'medical' is not one"),
    ("train: {{steps: 2,", "train: {{stepz: 2,", ":12 train.stepz: unknown key"),
    ("label: some7b", "label: some/7b", ":8 models[1].label: must be letters"),
    ("name: grid", "name: grid\ntask: toy", ":2 task: a sweep lists tasks: and models:"),
    ("name: grid", "name: a/b", ":1 name: must be letters"),
    ("n_train: 40", "n_train: 0", ":11 data.n_train: Input should be greater than 0"),
    (
        "{{name: insecure_code, data: {{n_eval_drift: 54}}",
        "{{name: insecure_code, data: {{train_file: nope.jsonl}}",
        ":5 tasks[1].data.train_file: no file at",
    ),
    (
        "methods: [base, lora, grasp]",
        "methods: [base, {{name: lora, overrides: {{rank: -1}}}}, grasp]",
        ":10 methods[1].overrides.rank",
    ),
    ("models:\n  - default\n", "models: []\n", ":6 models: List should have at least 1 item"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD)
def test_bad_sweep_files_name_the_file_line_and_field(tmp_path, old, new, message):
    assert old in SWEEP, old
    bad = SWEEP.replace(old, new)
    if new == "models: []\n":  # drop the second model too
        bad = bad.replace(SOME_MODEL, "")
    path = write_sweep(tmp_path, bad)
    with pytest.raises(ConfigError) as err:
        plan(path)
    assert str(path) in str(err.value)
    assert message in str(err.value), str(err.value)


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_sweep(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match=r"list\.yaml:1 <root>: expected a mapping"):
        load_sweep(tmp_path / "list.yaml")


# --------------------------------------------------------------------------------------------
# The paper-scale configs (validated without a GPU or a download)

PAPER = sorted((REPO / "experiments" / "paper").glob("*.yaml"))
LORA_TRAINED = {"lora", "grasp", "steer_preventative", "caft"}


@pytest.fixture
def no_model_lookup(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("validating a config must not resolve a model")

    monkeypatch.setattr("grasp_bench.model.models.resolve_model", no)
    monkeypatch.setattr("grasp_bench.model.models.prepare_default_model", no)


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_configs_validate_with_the_published_recipe(path, no_model_lookup):
    exp = load_experiment(path)
    recipes = {r.label: r for r in load_recipes(exp)}
    cfg = exp.config
    assert cfg.name == path.stem and cfg.model.startswith("Qwen/Qwen2.5-")
    for label in LORA_TRAINED:
        assert recipes[label].config | {"rank": 32, "alpha": 64.0, "use_rslora": True} == (
            recipes[label].config
        ), label
    assert recipes["steer_inference"].config["coefficient"] == 2.0
    assert recipes["steer_preventative"].config["coefficient"] == 5.0
    assert cfg.train.lr == 1e-5
    assert cfg.train.steps * cfg.train.batch_size == cfg.data.n_train  # one epoch
    assert (cfg.generation.temperature, cfg.generation.max_tokens) == (1.0, 600)
    assert cfg.generation.samples >= 50 and len(cfg.seeds) >= 3


def test_paper_configs_cover_a_7b_and_a_32b_model_per_task():
    sizes: dict[str, set[str]] = {}
    for path in PAPER:
        cfg = load_experiment(path).config
        sizes.setdefault(cfg.task, set()).add("7B" if "-7B-" in cfg.model else "32B")
    assert sizes == {t: {"7B", "32B"} for t in ("insecure_code", "medical", "financial")}


def test_the_paper_sweep_runs_exactly_the_paper_experiments(no_model_lookup):
    """The sweep and the single experiments hold the same settings: same ids, fingerprints."""
    runs = {
        (r.exp.config.task, r.exp.config.model): r
        for r in plan_sweep(load_sweep(REPO / "experiments" / "sweeps" / "paper.yaml"))
    }
    assert len(runs) == len(PAPER)
    for path in PAPER:
        exp = load_experiment(path)
        run = runs[(exp.config.task, exp.config.model)]
        data = exp.config.data
        files = {key: published_identity(getattr(data, key), kind)
                 for key, kind in DATA_KINDS.items() if getattr(data, key)}  # fmt: skip
        assert set(files) == (
            set() if exp.config.task == "financial" else {"train_file", "drift_questions"}
        )
        identity = run_identity(exp.config, files)
        assert run_fingerprint(identity, exp.config, load_recipes(exp)) == run.fingerprint, path


@pytest.mark.parametrize("path", sorted((REPO / "experiments" / "sweeps").glob("*.yaml")))
def test_committed_sweeps_plan(path, no_model_lookup):
    assert plan_sweep(load_sweep(path))


def test_a_model_can_set_a_train_field_back_to_its_default(tmp_path):
    """A field set at its default is still an override (exclude_if hides defaults from dumps)."""
    text = SWEEP.replace(
        "train: {{steps: 2, batch_size: 4}}",
        "train: {{steps: 2, batch_size: 4, gradient_checkpointing: true}}",
    ).replace("train: {{batch_size: 2}}}}", "train: {{gradient_checkpointing: false}}}}")
    runs = plan(write_sweep(tmp_path, text))
    flags = {r.exp.config.model: r.exp.config.train.gradient_checkpointing for r in runs}
    assert flags == {"default": True, "some-org/Some-Model-7B": False}
