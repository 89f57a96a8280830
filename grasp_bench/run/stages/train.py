"""The train stage: every method at every seed, dependencies first, one stage folder per
target (``train/<label>-s<seed>/``); a finished target is kept."""

from __future__ import annotations

from pathlib import Path

from grasp_bench.core.config import LoadedExperiment
from grasp_bench.core.rundir import ADAPTER, target_name
from grasp_bench.core.store import (
    Stage,
)
from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.run.stages.base import RunData, RunStage, RunState, Target
from grasp_bench.train.methods import Recipe


class TrainStage(RunStage):
    """``train/<target>/``: the adapter, its method card, directions, checkpoints; inputs: the
    model, the method and its config, the training settings, the data and the seed, and the
    identities of the targets it depends on."""

    name = "train"
    covers = ("train",)

    def run(self, state: RunState) -> None:
        state.targets = train_all(state.exp, state.recipes, state.data, state.progress)


def _training_order(recipes: list[Recipe]) -> list[Recipe]:
    by_label = {r.label: r for r in recipes}
    ordered: list[Recipe] = []
    visiting: set[str] = set()

    def visit(r: Recipe) -> None:
        if r in ordered:
            return
        if r.label in visiting:
            raise ConfigError(f"{r.path}: dependency cycle through {r.label!r}")
        visiting.add(r.label)
        for dep in r.method.requires():
            visit(by_label[dep])
        ordered.append(r)

    for r in recipes:
        visit(r)
    return ordered


def train_all(
    exp: LoadedExperiment, recipes: list[Recipe], data: RunData, progress: bool = True
) -> list[Target]:
    """Train stage: every method at every seed, dependencies first; finished ones are kept."""
    from grasp_bench.train.trainer import train_adapter

    cfg = exp.config
    targets: list[Target] = []
    for seed in cfg.seeds:
        adapters: dict[str, Path] = {}
        hashes: dict[str, str] = {}
        for recipe in _training_order(recipes):
            target = Target(target_name(recipe.label, seed), recipe, seed)
            if recipe.method.trains:
                deps = {d: adapters[d] for d in recipe.method.requires()}
                stage_cfg = {
                    "model": data.model,
                    "method": recipe.method.name,
                    "config": recipe.config,
                    # what the user asked for, not what this machine resolved it to (the
                    # method card records that), so a run trained on a GPU stays done on a CPU
                    "train": cfg.train.model_dump(),
                    "data": data.data_hash,
                    "seed": seed,
                    "deps": {d: hashes[d] for d in deps},
                }
                stage = Stage(data.run.train, target.name, stage_cfg)
                if not stage.is_done():
                    stage.reset_if_stale()
                    train_adapter(
                        recipe.method,
                        data.model,
                        data.control_rows
                        if recipe.method.trains_on == "control"
                        else data.train_rows,
                        cfg.train,
                        stage.dir,
                        seed,
                        dependencies=deps,
                        contrast_rows=data.control_rows,
                        method_config=recipe.config,
                        trust_remote_code=cfg.trust_remote_code,
                        progress=progress,
                    )
                    stage.finish(method=recipe.method.name, seed=seed)
                adapters[recipe.label] = stage.dir / ADAPTER
                hashes[recipe.label] = stage.config_hash
                target.adapter = adapters[recipe.label]
            targets.append(target)
    return targets
