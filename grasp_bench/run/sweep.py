"""Sweeps: a grid of tasks x models x methods x seeds, expanded into experiments, run by an
executor (here, or as Ray tasks), indexed in one ``sweep.json`` and published on one board.

One run per (task, model), holding every method and seed of the grid. GRASP and the
activation baselines read the plain-LoRA adapter of the same seed, and the pipeline trains
that dependency inside the experiment that needs it: a run per method (or per method and
seed) would train the naive LoRA again in each. A run per (task, model, seed) would share it
but cannot be published, because a leaderboard submission is one (task, method, model) over
all its seeds, written from one run directory. So the unit is the experiment the board reads.

Run ids are ``<task>-<model label>-<hash>``; the hash covers what the run's adapters are
trained from: task, model, data, training settings, plugins and ``trust_remote_code`` (data
files by content). No list order enters it (a dict hashed with sorted keys), so reordering
the sweep file renames nothing. Methods, seeds, generation and judge are left out
of the id on purpose: the pipeline keeps one stage per method and seed, completions per
target and scores apart from completions, so adding a seed or a method, or changing the
judge, reuses the run directory and redoes only what changed. A change to the training
inputs gets a new directory, and the old results stay beside it.

Skipping: when the pipeline has returned and the report exists, ``sweep-done.json`` is
written atomically into the run directory with the run's fingerprint (the id's content plus
the resolved recipes, seeds, generation and judge). A run is skipped only when its marker
holds today's fingerprint. A run killed before its marker was written is run again, and the
pipeline resumes its finished stages, so the rerun only does what was missing.

Results: ``<output_dir>/<sweep name>/<run id>/`` per run, ``sweep.json`` beside them (each
run's id, config, status and report, rewritten atomically as runs finish), then every
finished run is submitted to a board directory and the board is built with the same
functions ``grasp-bench submit`` and ``grasp-bench leaderboard build`` call.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError
from rich.console import Console

from grasp_bench.core.config import (
    ExperimentConfig,
    LoadedExperiment,
)
from grasp_bench.core.rundir import RunDir
from grasp_bench.core.store import atomic_write_json, file_hash, stable_hash
from grasp_bench.core.yaml_loader import (
    format_validation_error,
)
from grasp_bench.run.sweep_config import (  # noqa: F401  (re-exported)
    SAFE,
    LoadedSweep,
    ModelEntry,
    SweepConfig,
    TaskEntry,
    load_sweep,
)

if TYPE_CHECKING:
    from grasp_bench.train.methods import Recipe

console = Console(stderr=True)

DONE_MARKER = "sweep-done.json"
INDEX = "sweep.json"


# --------------------------------------------------------------------------------------------
# Expansion


@dataclass(frozen=True)
class PlannedRun:
    """One experiment of the sweep, validated and with its recipes resolved."""

    id: str
    exp: LoadedExperiment
    fingerprint: str

    @property
    def run(self) -> RunDir:
        return RunDir.of(self.exp.config.output_dir, self.id)

    @property
    def marker(self) -> Path:
        return self.run / DONE_MARKER

    def is_done(self) -> bool:
        """Finished under today's fingerprint: marker matches and the report is there."""
        try:
            marker = json.loads(self.marker.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return marker.get("fingerprint") == self.fingerprint and self.run.results.exists()


def _merged(base: BaseModel, *overrides: BaseModel | None) -> dict[str, Any]:
    out = base.model_dump()
    for o in overrides:
        if o is not None:
            # fields the user set, even to a default value (model_dump would drop those
            # whose exclude_if hides a default)
            out.update({k: getattr(o, k) for k in o.model_fields_set})
    return out


def published_identity(value: str, kind: str) -> str:
    """What a ``published:NAME`` reference contributes to a run's identity: the name and its
    pinned URL (a commit), or for a set registered from a local copy its registry digest."""
    from grasp_bench.data.published import check_ref

    entry = check_ref(value, kind)  # type: ignore[arg-type]
    return f"{value}@{entry.url or entry.sha256 or 'local copy'}"


def _data_files(sweep: LoadedSweep, data: dict[str, Any], i: int) -> dict[str, str]:
    """Content hashes of the user's data files (relative to the sweep file), checked to exist."""
    from grasp_bench.data.published import DATA_KINDS, PublishedDataError, is_ref

    found = {}
    task = sweep.config.tasks[i]
    for key, kind in DATA_KINDS.items():
        if data.get(key):
            own = task.data is not None and key in task.data.model_fields_set
            where = ("tasks", i, "data", key) if own else ("data", key)
            if is_ref(data[key]):  # a published set: pinned by its URL's commit, so a sweep
                try:  # plans offline; the run itself reads the fetched, digest-checked copy
                    found[key] = published_identity(data[key], kind)
                except PublishedDataError as exc:
                    raise sweep.error(where, str(exc)) from None
                continue
            path = (
                Path(data[key]) if Path(data[key]).is_absolute() else sweep.path.parent / data[key]
            )
            if not path.is_file():
                raise sweep.error(where, f"no file at {path}")
            found[key] = file_hash(path)
    return found


def run_identity(exp: ExperimentConfig, files: dict[str, str]) -> dict[str, Any]:
    """What every adapter of a run is trained from; the run id hashes this."""
    data = exp.data.model_dump(exclude={"train_file", "drift_questions"})
    return {
        "task": exp.task,
        "model": exp.model,
        "plugins": sorted(exp.plugins),
        "trust_remote_code": exp.trust_remote_code,
        "data": {**data, "files": files},
        "train": exp.train.model_dump(),
    }


def run_fingerprint(identity: dict[str, Any], exp: ExperimentConfig, recipes: list[Recipe]) -> str:
    """Everything a finished run's results depend on; its done marker records this."""
    return stable_hash(
        {
            "identity": identity,
            "seeds": sorted(exp.seeds),
            "generation": exp.generation.model_dump(),
            "judge": exp.judge.model_dump(exclude={"cache", "concurrency"}),  # as the pipeline
            "recipes": sorted([r.label, r.method.name, r.config, r.description] for r in recipes),
        }
    )


def plan_sweep(sweep: LoadedSweep) -> list[PlannedRun]:
    """Every (task, model) experiment of the sweep, checked and with its recipes loaded
    (nothing is downloaded or trained)."""
    from grasp_bench.run.pipeline import load_recipes

    cfg = sweep.config
    out_dir = Path(cfg.output_dir).resolve() / cfg.name
    runs: list[PlannedRun] = []
    for i, task in enumerate(cfg.tasks):
        for model in cfg.models:
            if model.tasks is not None and task.name not in model.tasks:
                continue
            raw = {
                "plugins": cfg.plugins,
                "model": model.id,
                "task": task.name,
                "seeds": sorted(cfg.seeds),
                "methods": [m if isinstance(m, str) else m.model_dump() for m in cfg.methods],
                "judge": cfg.judge.model_dump(),
                "output_dir": str(out_dir),
                "trust_remote_code": cfg.trust_remote_code,
                "data": _merged(cfg.data, task.data),
                "train": _merged(cfg.train, task.train, model.train),
                "generation": cfg.generation.model_dump(),
            }
            files = _data_files(sweep, raw["data"], i)
            try:  # named once its id is known (task, label and hash are safe in a name)
                unnamed = ExperimentConfig.model_validate({**raw, "name": "unnamed"})
            except ValidationError as exc:
                raise format_validation_error(exc, sweep.path, sweep.lines) from None
            identity = run_identity(unnamed, files)
            run_id = f"{task.name}-{model.run_label}-{stable_hash(identity)[:8]}"
            config = unnamed.model_copy(update={"name": run_id})
            exp = LoadedExperiment(config=config, path=sweep.path, lines=sweep.lines)
            runs.append(
                PlannedRun(run_id, exp, run_fingerprint(identity, config, load_recipes(exp)))
            )
    return runs


# --------------------------------------------------------------------------------------------
# Running one planned run (in this process or in a Ray worker)


def run_job(run: PlannedRun, progress: bool) -> dict[str, Any]:
    """What an executor ships: plain data, so it crosses process (and machine) boundaries."""
    return {
        "config": run.exp.config.model_dump(mode="json"),
        "path": str(run.exp.path.resolve()),
        "fingerprint": run.fingerprint,
        "progress": progress,
    }


def execute_run(job: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) one experiment through the pipeline, then mark it done."""
    from grasp_bench.run.pipeline import run_experiment

    exp = LoadedExperiment(
        config=ExperimentConfig.model_validate(job["config"]), path=Path(job["path"]), lines={}
    )
    started = time.time()
    run_experiment(exp, progress=job["progress"])
    run = RunDir.of(exp.config.output_dir, exp.config.name)
    if not run.results.exists():
        raise RuntimeError(f"{run}: the pipeline returned without a report at {run.results}")
    atomic_write_json(
        run / DONE_MARKER,
        {"fingerprint": job["fingerprint"], "finished": time.time(), "report": str(run.results)},
    )
    return {"report": str(run.results), "seconds": round(time.time() - started, 1)}


# --------------------------------------------------------------------------------------------
# The index, the executors' loop and the board

Status = Literal["pending", "queued", "running", "done", "skipped", "failed"]


class SweepIndex:
    """``sweep.json``: every run's id, config, status and report; rewritten atomically."""

    def __init__(self, sweep: LoadedSweep, runs: list[PlannedRun]):
        self.path = Path(sweep.config.output_dir).resolve() / sweep.config.name / INDEX
        self.head = {"sweep": sweep.config.name, "file": str(sweep.path.resolve())}
        self.entries = {
            r.id: {
                "id": r.id,
                "task": r.exp.config.task,
                "model": r.exp.config.model,
                "status": "pending",
                "fingerprint": r.fingerprint,
                "run_dir": str(r.run),
                "report": None,
                "config": r.exp.config.model_dump(mode="json"),
            }
            for r in runs
        }

    def update(self, run_id: str, status: Status, **extra: Any) -> None:
        self.entries[run_id].update(status=status, **extra)
        self.write()

    def write(self, **head: Any) -> None:
        self.head.update(head)
        atomic_write_json(self.path, {**self.head, "runs": list(self.entries.values())})


def run_sweep(
    sweep: LoadedSweep,
    runs: list[PlannedRun],
    executor: Literal["local", "ray"] = "local",
    address: str | None = None,
) -> SweepIndex:
    """Run every planned run that is not done yet; failures are recorded and the rest go on."""
    from grasp_bench.run.executors import Job, LocalExecutor, RayExecutor

    index = SweepIndex(sweep, runs)
    todo = []
    for r in runs:
        if r.is_done():
            index.entries[r.id].update(status="skipped", report=str(r.run.results))
        else:
            index.entries[r.id]["status"] = "queued"
            todo.append(r)
    index.write()
    console.print(
        f"[bold]sweep[/] {sweep.config.name}: {len(runs)} runs, {len(runs) - len(todo)} done"
        f" before, {len(todo)} to run ({executor})"
    )
    jobs = [
        Job(r.id, run_job(r, progress=executor == "local"), r.exp.config.train.threads)
        for r in todo
    ]

    def started(job: Job) -> None:
        console.print(f"[bold]run[/] {job.key}")
        index.update(job.key, "running")

    def finished(job: Job, result: dict[str, Any] | None, error: str | None) -> None:
        if error is None and result is not None:
            index.update(job.key, "done", report=result["report"], seconds=result["seconds"])
        else:
            console.print(f"[red]failed[/] {job.key}: {error}")
            index.update(job.key, "failed", error=error)

    runner = LocalExecutor() if executor == "local" else RayExecutor(address)
    runner.map(execute_run, jobs, started, finished)
    return index


def publish(index: SweepIndex, board: Path) -> list[str]:
    """Submit every finished run to ``board`` and build it, as ``grasp-bench submit`` and
    ``grasp-bench leaderboard build`` do; returns the validator's problems (empty: all ok)."""
    from grasp_bench.leaderboard.build import build_board
    from grasp_bench.leaderboard.schema import write_json_schemas
    from grasp_bench.leaderboard.submit import run_submissions
    from grasp_bench.leaderboard.validate import validate_submission

    problems = []
    for entry in index.entries.values():
        if entry["status"] not in ("done", "skipped"):
            continue
        try:
            written = run_submissions(Path(entry["run_dir"]), board)
        except (OSError, ValueError, KeyError) as exc:  # one unreadable run spoils no other
            problems.append(f"{entry['id']}: cannot submit: {type(exc).__name__}: {exc}")
            continue
        entry["submissions"] = [str(s) for s in written]
        for sub in written:
            problems += [f"{sub}: {p}" for p in validate_submission(sub, board)]
    if any(e.get("submissions") for e in index.entries.values()):
        write_json_schemas(board / "schema")
        paths = build_board(board)
        index.write(board=str(board), board_page=str(paths["html"]))
    else:
        index.write()
    return problems
