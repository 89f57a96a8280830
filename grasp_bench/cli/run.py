"""Commands that run experiments: the model, a run or one of its stages, validation, sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from grasp_bench.cli.base import (
    app,
    console,
    experiment_of,
    fail,
    user_errors,
)
from grasp_bench.core.locks import LockHeld
from grasp_bench.core.rundir import RunDir
from grasp_bench.core.yaml_loader import ConfigError

model_app = typer.Typer(help="The model under test.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if cached.")] = False,
) -> None:
    """Convert the embedded default model (GGUF) to a safetensors checkpoint; print its path."""
    from grasp_bench.model.models import prepare_default_model

    with user_errors(FileNotFoundError):
        path = prepare_default_model(force=force)
    typer.echo(str(path))


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment YAML.")],
    methods: Annotated[
        str | None,
        typer.Option(
            help="Only these methods (comma-separated labels) and the ones they need; the "
            "others are left for a later run into the same folder."
        ),
    ] = None,
) -> None:
    """Run an experiment YAML end to end (resumes what an earlier run left)."""
    from grasp_bench.core.config import load_experiment
    from grasp_bench.run.pipeline import run_experiment

    only = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    with user_errors(ConfigError, LockHeld):
        run_experiment(load_experiment(config), methods=only)


@app.command()
def generate(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Generate completions for every method's adapter of a run (its snapshotted settings)."""
    from grasp_bench.run.pipeline import run_experiment

    with user_errors(ConfigError, LockHeld):
        out = run_experiment(experiment_of(run_dir), until="generate")
    typer.echo(f"{len(out.completions)} completions in {RunDir(out.run_dir).generate}")


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="Experiment YAML.")]) -> None:
    """Check an experiment YAML and the recipes it names, without running anything."""
    from grasp_bench.core.config import load_experiment
    from grasp_bench.run.pipeline import load_recipes
    from grasp_bench.run.stages import check_published_refs

    with user_errors(ConfigError):
        exp = load_experiment(config)
        recipes = load_recipes(exp)
        check_published_refs(exp)
    typer.echo(f"{config}: ok ({', '.join(r.label for r in recipes)})")


@app.command()
def methods() -> None:
    """List the registered methods."""
    from grasp_bench.train.methods import get_method_class, registered_methods

    for name in registered_methods():
        doc = (get_method_class(name).__doc__ or "").strip().splitlines()[0]
        typer.echo(f"{name:20s} {doc}")


@app.command()
def train(
    method: Annotated[str, typer.Option(help="Recipe name in baselines/ (or a recipe path).")],
    task: Annotated[str, typer.Option(help="Benchmark task.")] = "toy",
    model: Annotated[str, typer.Option(help="'default', an HF id or a path.")] = "default",
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 60,
    output_dir: Annotated[Path, typer.Option(help="Where runs go.")] = Path("runs"),
) -> None:
    """Train one method's adapter (and what it depends on) on a task; print the adapter path."""
    from grasp_bench.core.config import ExperimentConfig, LoadedExperiment
    from grasp_bench.run.pipeline import load_recipes, train_targets

    path = Path(method)
    names = [path.stem]
    with user_errors(ConfigError, LockHeld):
        exp = LoadedExperiment(
            config=ExperimentConfig(
                name=f"train-{task}-{path.stem}",
                model=model,
                task=task,
                seeds=[seed],
                methods=[{"name": path.stem, "recipe": str(path)} if path.suffix else path.stem],
                output_dir=str(output_dir),
                train={"steps": steps},
            ),
            path=Path("baselines") / "cli.yaml",
            lines={},
        )
        recipes = load_recipes(exp, allow_missing_deps=True)
        names = [r.label for r in recipes]
        adapters = train_targets(exp, recipes)
    for name in names:
        typer.echo(f"{name}: {adapters.get(name)}")


@app.command()
def demo(
    config: Annotated[Path, typer.Option(help="Experiment YAML.")] = Path(
        "experiments/toy-demo.yaml"
    ),
) -> None:
    """The main job on the embedded default model: base, lora and grasp on the toy task."""
    run(config)


def _print_cost_plan(
    runs: list, gpu_hour_usd: float, mfu: float, tokens_per_example: int, judge_price: str | None
) -> None:
    """The plan as a table (estimates; the assumptions are printed under it)."""
    from rich.table import Table

    from grasp_bench.run.costplan import Assumptions, plan_sweep_cost

    price = None
    if judge_price:
        try:
            inp, out = (float(x) for x in judge_price.split(","))
        except ValueError:
            fail(ConfigError(f"--judge-price {judge_price}: expected IN,OUT, e.g. 2.5,10"))
        price = (inp, out)
    a = Assumptions(mfu=mfu, gpu_hour_usd=gpu_hour_usd, tokens_per_example=tokens_per_example,
                    judge_price=price)  # fmt: skip
    rows = plan_sweep_cost(runs, a)

    def cell(v, fmt: str) -> str:
        if v is None:
            return "?"
        if v == "":
            return ""
        if fmt in ("B", "M"):  # billions of parameters, millions of tokens
            return f"{v / (1e9 if fmt == 'B' else 1e6):.1f}{fmt}"
        return format(v, fmt)

    table = Table(title="What the sweep will cost (estimate, nothing started)")
    cols = [("run", "s"), ("params", "B"), ("trained arms", "d"), ("train tokens", "M"),
            ("train gpu h", ".1f"), ("generated tokens", "M"), ("generate gpu h", ".1f"),
            ("judge calls", ",.0f"), ("judge usd", ",.0f"), ("peak gb", ".0f")]  # fmt: skip
    for name, _ in cols:
        table.add_column(name)
    for r in rows:
        table.add_row(*[cell(r.get(name), fmt) for name, fmt in cols])

    wide = Console(width=max(console.width, 150))
    wide.print(table)
    total = rows[-1]
    console.print(
        f"total: {cell(total['train gpu h'], '.1f')} GPU-h training +"
        f" {cell(total['generate gpu h'], '.1f')} GPU-h generation ="
        f" ${cell(total['gpu usd'], ',.0f')} at ${gpu_hour_usd}/GPU-h; judge"
        f" ${cell(total['judge usd'], ',.0f')}; peak memory {cell(total['peak gb'], '.0f')} GB"
        " per GPU (a model needing more than one card's memory needs a bigger card, fewer"
        " tokens per batch or load_in_4bit)",
        highlight=False,
    )
    console.print(f"assumptions: {a.describe()} (see grasp_bench/run/costplan.py)", highlight=False)
    if any(r["params"] is None for r in rows[:-1]):
        console.print("?: a model whose shape is neither known nor in a local config.json")


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="Sweep YAML: tasks x models x methods x seeds.")],
    executor: Annotated[
        str, typer.Option(help="local: one run after another here; ray: a Ray task per run.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray instance).")
    ] = None,
    board: Annotated[
        Path | None, typer.Option(help="Leaderboard directory (default: the sweep's board/).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the runs and which are done; run nothing.")
    ] = False,
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Print what the sweep will cost (an estimate); run nothing."),
    ] = False,
    gpu_hour_usd: Annotated[float, typer.Option(help="--plan: price of a GPU-hour.")] = 3.0,
    mfu: Annotated[float, typer.Option(help="--plan: share of the GPU's bf16 peak.")] = 0.35,
    tokens_per_example: Annotated[
        int, typer.Option(help="--plan: mean training sequence length in tokens.")
    ] = 300,
    judge_price: Annotated[
        str | None,
        typer.Option(help="--plan: judge price per million tokens as IN,OUT (USD)."),
    ] = None,
) -> None:
    """Run a sweep: one experiment per (task, model) with every method and seed, skipping runs
    already done, indexed in <output_dir>/<sweep>/sweep.json, then submitted to a board."""
    from grasp_bench.run.sweep import load_sweep, plan_sweep, publish, run_sweep

    with user_errors(ConfigError):
        if executor not in ("local", "ray"):
            raise ConfigError(f"--executor {executor}: local or ray")
        if address and executor != "ray":
            raise ConfigError("--address is a Ray cluster's; add --executor ray")
        loaded = load_sweep(config)
        runs = plan_sweep(loaded)
    if dry_run:
        for r in runs:
            state = "done" if r.is_done() else "to run"
            typer.echo(f"{state:7s} {r.id}  {r.run}")
        return
    if plan:
        _print_cost_plan(runs, gpu_hour_usd, mfu, tokens_per_example, judge_price)
        return
    try:
        index = run_sweep(loaded, runs, executor, address)
    except RuntimeError as exc:  # e.g. the ray executor without Ray installed
        fail(exc)
    problems = publish(index, board or index.path.parent / "board")
    for entry in index.entries.values():
        typer.echo(f"{entry['status']:8s} {entry['id']}  {entry.get('error') or entry['report']}")
    for p in problems:
        typer.echo(f"INVALID {p}")
    typer.echo(f"index: {index.path}")
    if "board" in index.head:
        typer.echo(f"board: {index.head['board_page']}")
    if problems or any(e["status"] == "failed" for e in index.entries.values()):
        raise typer.Exit(1)
