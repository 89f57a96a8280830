"""One experiment, stage by stage: data -> train -> generate -> score -> report (a task measured
teacher-forced measures in place of generate and score). Each stage is an object
(``grasp_bench.run.stages``) that owns its folder of the run directory and skips itself when its
manifest matches its inputs, so a rerun does only what is missing; this module loads the
recipes, holds the run's lock and runs the stages in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grasp_bench.core.config import LoadedExperiment
from grasp_bench.core.locks import exclusive
from grasp_bench.core.rundir import RunDir
from grasp_bench.core.yaml_loader import ConfigError, import_plugin
from grasp_bench.data.taskspec import get_task
from grasp_bench.run.stages import RunState, Target, prepare_data, stages_for
from grasp_bench.run.stages.train import train_all
from grasp_bench.train.methods import Recipe, load_recipe

UNTIL = ("train", "generate", "score", "report")


@dataclass
class RunResult:
    """What a run made, up to the stage it was run until."""

    run_dir: Path
    targets: list[Target]
    completions: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    table: Any = None  # the report's trade-off table (pandas), when the report ran
    paths: dict[str, Path] = field(default_factory=dict)  # the report's files


def load_recipes(
    exp: LoadedExperiment, recipes_dir: Path | None = None, allow_missing_deps: bool = False
) -> list[Recipe]:
    """The experiment's recipes; a dependency it does not list is an error, or (for the
    ``train`` command) is loaded from the recipes directory under its own name."""
    cfg = exp.config
    for module in cfg.plugins:
        import_plugin(module)
    base_dir = recipes_dir or _default_recipes_dir(exp.path)
    recipes = []
    for i, ref in enumerate(cfg.method_refs()):
        path = Path(ref.recipe) if ref.recipe else base_dir / f"{ref.name}.yaml"
        if ref.recipe and not path.is_absolute() and (exp.path.parent / path).exists():
            path = exp.path.parent / path
        if not path.exists():
            line = exp.lines.get(("methods", i), 1)
            raise ConfigError(f"{exp.path}:{line} methods[{i}]: no recipe at {path}")
        recipes.append(
            load_recipe(
                path,
                label=ref.name,
                overrides=ref.overrides,
                override_origin=(exp.path, exp.lines, ("methods", i, "overrides")),
            )
        )
    labels = {r.label for r in recipes}
    pending = list(recipes)
    while pending:
        r = pending.pop()
        for dep in r.method.requires():
            if dep in labels:
                continue
            if not allow_missing_deps:
                raise ConfigError(
                    f"{r.path}: method {r.label!r} needs {dep!r} in the same experiment; "
                    f"add it to methods in {exp.path}"
                )
            extra = load_recipe(base_dir / f"{dep}.yaml", label=dep)
            recipes.insert(0, extra)
            labels.add(dep)
            pending.append(extra)
    return recipes


def select_methods(exp: LoadedExperiment, recipes: list[Recipe], names: list[str]) -> list[Recipe]:
    """The recipes named (and the ones they need), in the experiment's order: part of a sweep
    runs now and the rest later into the same run folder, trained and measured identically."""
    by_label = {r.label: r for r in recipes}
    unknown = [n for n in names if n not in by_label]
    if unknown:
        raise ConfigError(
            f"{exp.path}: no method {', '.join(map(repr, unknown))} in this experiment; "
            f"its methods: {', '.join(by_label)}"
        )
    keep, pending = set(), list(names)
    while pending:
        label = pending.pop()
        if label not in keep:
            keep.add(label)
            pending.extend(d for d in by_label[label].method.requires() if d in by_label)
    return [r for r in recipes if r.label in keep]


def _default_recipes_dir(exp_path: Path) -> Path:
    """baselines/ of the repository the experiment lives in (or of the working directory)."""
    for parent in [exp_path.resolve().parent, *exp_path.resolve().parents]:
        if (parent / "baselines").is_dir():
            return parent / "baselines"
    return Path("baselines")


def train_targets(exp: LoadedExperiment, recipes: list[Recipe]) -> dict[str, Path | None]:
    """Data and train stages only; returns label -> adapter (first seed)."""
    with exclusive(RunDir.of(exp.config.output_dir, exp.config.name).root):
        targets = train_all(exp, recipes, prepare_data(exp))
    return {t.recipe.label: t.adapter for t in targets if t.seed == exp.config.seeds[0]}


def run_experiment(
    exp: LoadedExperiment,
    progress: bool = True,
    until: str = "report",
    methods: list[str] | None = None,
) -> RunResult:
    """Run (or resume) the stages of an experiment up to ``until`` (train, generate, score or
    report), for every method or only ``methods`` (and what they need). Holds the run
    directory's lock throughout: a second process on the same run fails at once (``LockHeld``)
    instead of writing beside it."""
    if until not in UNTIL:
        raise ValueError(f"until must be train, generate, score or report, not {until!r}")
    recipes = load_recipes(exp)  # a config error is reported before anything is written
    if methods:
        recipes = select_methods(exp, recipes, methods)
    spec = get_task(exp.config.task)
    state = RunState(exp, recipes, spec, progress)
    with exclusive(RunDir.of(exp.config.output_dir, exp.config.name).root):
        for stage in stages_for(spec.evaluate is not None):
            stage.run(state)
            if until in stage.covers:
                break
    return RunResult(
        run_dir=state.run.root,
        targets=state.targets,
        completions=state.completions,
        records=state.records,
        table=state.table,
        paths=state.paths,
    )
