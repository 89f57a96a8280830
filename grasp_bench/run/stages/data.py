"""The data stage: the task's training, control and eval sets (or the user's own files),
generated once per config; and the snapshot of the experiment as it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grasp_bench.core.config import LoadedExperiment
from grasp_bench.core.rundir import RunDir
from grasp_bench.core.store import (
    Stage,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    file_hash,
    read_jsonl,
)
from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.data import build_task, load_chat_jsonl
from grasp_bench.data.em_questions import em_drift_prompts
from grasp_bench.model.models import resolve_model
from grasp_bench.run.stages.base import RunData, RunStage, RunState, console
from grasp_bench.train.methods import Recipe


class DataStage(RunStage):
    """``data/``: train.jsonl, control.jsonl, eval.jsonl; inputs: the task, the data settings
    and the user's files by content. Also writes the experiment snapshot and recipes."""

    name = "data"

    def run(self, state: RunState) -> None:
        state.data = prepare_data(state.exp)
        snapshot_experiment(state.exp, state.recipes, state.data.run, state.data.files)


def _own_data_files(exp: LoadedExperiment) -> dict[str, Path]:
    """The user's data files the experiment names (relative to it, or a published set in the
    cache), checked to exist."""
    from grasp_bench.data.published import DATA_KINDS, is_ref, resolve_ref

    found = {}
    for key, kind in DATA_KINDS.items():
        value = getattr(exp.config.data, key)
        if is_ref(value):
            found[key] = _published(exp, key, resolve_ref, kind)
        elif value:
            path = Path(value) if Path(value).is_absolute() else exp.path.parent / value
            if not path.is_file():
                line = exp.lines.get(("data", key), 1)
                raise ConfigError(f"{exp.path}:{line} data.{key}: no file at {path}")
            found[key] = path
    return found


def check_published_refs(exp: LoadedExperiment) -> None:
    """Every ``published:NAME`` the experiment names is a registered set of the right kind
    (offline: nothing is downloaded or read from the cache)."""
    from grasp_bench.data.published import DATA_KINDS, check_ref, is_ref

    for key, kind in DATA_KINDS.items():
        if is_ref(getattr(exp.config.data, key)):
            _published(exp, key, check_ref, kind)


def _published(exp: LoadedExperiment, key: str, look: Any, kind: str) -> Any:
    """``look(reference, kind)``, its error named by the experiment's file, line and field."""
    from grasp_bench.data.published import PublishedDataError

    try:
        return look(getattr(exp.config.data, key), kind)
    except PublishedDataError as exc:
        line = exp.lines.get(("data", key), 1)
        raise ConfigError(f"{exp.path}:{line} data.{key}: {exc}") from None


def _warn_samples(drift: list[dict[str, Any]], samples: int) -> None:
    wanted = sorted({p["samples"] for p in drift if p.get("samples")})
    if wanted and wanted != [samples]:
        console.print(
            f"[yellow]note:[/] the question file asks for {wanted} samples per paraphrase; this"
            f" run samples generation.samples={samples} answers per question"
        )


def prepare_data(exp: LoadedExperiment) -> RunData:
    """Data stage: the task's training, control and eval sets, generated once per config."""
    cfg = exp.config
    run = RunDir.of(cfg.output_dir, cfg.name)
    model = resolve_model(cfg.model)
    console.print(f"[bold]run[/] {run}  model={model}")
    atomic_write_json(run.marker, {"config_path": str(exp.path.resolve())})
    from grasp_bench.data.published import training_data_label

    own = _own_data_files(exp)
    hashes = {k: file_hash(p) for k, p in own.items()}
    training_data = training_data_label(cfg.data.train_file, hashes.get("train_file"))
    stage = Stage(
        run.root,
        run.data.name,
        {
            "task": cfg.task,
            # the user's files by content, not by path (a snapshot makes paths absolute)
            **cfg.data.model_dump(exclude={"train_file", "drift_questions"}),
            "files": hashes,
        },
    )
    if not stage.is_done():
        # everything is read and checked before the old stage is dropped: a bad row in a
        # user's file fails here and loses nothing already computed
        td = build_task(
            cfg.task, cfg.data.seed, cfg.data.n_train, cfg.data.n_eval_task, cfg.data.n_eval_drift
        )
        meta = dict(td.meta)
        meta["training_data"] = training_data
        if "train_file" in own:
            td.train = load_chat_jsonl(own["train_file"])
            meta["train_file"] = str(own["train_file"])
        if "drift_questions" in own:
            drift = em_drift_prompts(own["drift_questions"])
            td.eval_prompts = [p for p in td.eval_prompts if p["split"] != "drift"] + drift
            meta["drift_questions"] = str(own["drift_questions"])
            _warn_samples(drift, cfg.generation.samples)
        stage.reset_if_stale()
        atomic_write_jsonl(run.train_rows, td.train)
        atomic_write_jsonl(run.control_rows, td.control)
        atomic_write_jsonl(run.eval_prompts, td.eval_prompts)
        stage.finish(meta=meta, counts={"train": len(td.train), "eval": len(td.eval_prompts)})
    return RunData(
        run=run,
        model=model,
        train_rows=read_jsonl(run.train_rows),
        control_rows=read_jsonl(run.control_rows),
        eval_prompts=read_jsonl(run.eval_prompts),
        data_hash=file_hash(run.train_rows),
        files=own,
        training_data=training_data,
    )


def snapshot_experiment(
    exp: LoadedExperiment, recipes: list[Recipe], run: RunDir, files: dict[str, Path]
) -> Path:
    """Write the experiment as run, with every recipe resolved (overrides applied) beside it,
    so ``generate``/``judge``/``submit`` on this run directory never re-read files edited
    since; paths in it are absolute."""
    import yaml

    cfg = exp.config.model_dump(mode="json")
    cfg["output_dir"] = str(Path(cfg["output_dir"]).resolve())
    for key, path in files.items():  # resolved by the data stage
        cfg["data"][key] = str(path.resolve())
    cfg["methods"] = []
    for r in recipes:
        recipe = {"method": r.method.name, "description": r.description, "config": r.config}
        atomic_write_text(run.recipe(r.label), yaml.safe_dump(recipe))
        cfg["methods"].append(
            {"name": r.label, "recipe": run.recipe(r.label).relative_to(run.root).as_posix()}
        )
    atomic_write_text(run.snapshot, yaml.safe_dump(cfg, sort_keys=False))
    atomic_write_json(
        run.marker, {"config_path": str(exp.path.resolve()), "snapshot": run.snapshot.name}
    )
    return run.snapshot
