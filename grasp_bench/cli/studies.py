"""The study commands: the planted-direction and implicit-factor tasks' builds and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grasp_bench.cli.base import (
    app,
    echo_report,
    experiment_of,
    fail,
    user_errors,
)
from grasp_bench.core.rundir import RunDir
from grasp_bench.core.yaml_loader import ConfigError


@app.command()
def directions(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with a trained lora.")],
    seed: Annotated[int, typer.Option(help="Which seed's adapter.")] = 0,
    source: Annotated[str, typer.Option(help="The naive run's method label.")] = "lora",
    truth: Annotated[
        Path | None, typer.Option(help="A planted direction (safetensors) to compare with.")
    ] = None,
) -> None:
    """Does each GRASP reading of the naive run find the spurious direction? |cos| per layer
    with the truth (default: the supervised difference of means), random as chance level."""
    from grasp_bench.core.store import atomic_write_text, read_jsonl
    from grasp_bench.model.models import resolve_model
    from grasp_bench.studies.identification import identify_run

    with user_errors(ConfigError, FileNotFoundError):
        exp = experiment_of(run_dir)
        table, summary = identify_run(
            run_dir,
            resolve_model(exp.config.model),
            read_jsonl(RunDir(run_dir).train_rows),
            read_jsonl(RunDir(run_dir).control_rows),
            seed,
            source,
            truth,
            exp.config.trust_remote_code,
        )
    out = RunDir(run_dir).identification(seed)
    atomic_write_text(out, table.to_csv(index=False))
    atomic_write_text(out.with_suffix(".md"), summary.to_markdown(index=False) + "\n")
    typer.echo(summary.to_markdown(index=False))
    typer.echo(f"per layer: {out}")


@app.command("build-planted")
def build_planted(
    out: Annotated[Path, typer.Option(help="Task folder to write.")] = Path("tasks/grasp_planted"),
    model: Annotated[str, typer.Option(help="HF model id or path ('default': embedded).")] = (
        "default"
    ),
    layer: Annotated[int, typer.Option(help="First layer whose writers carry the style.")] = 10,
    pool: Annotated[int, typer.Option(help="Arithmetic questions answered by the teacher.")] = 320,
    steps: Annotated[int, typer.Option(help="Teacher training steps.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the teacher and its data.")] = 1234,
) -> None:
    """Build the planted-direction task for a model: train a teacher whose every residual write
    is along one direction v, distil its answers, save v (run once per model; minutes)."""
    from grasp_bench.core.store import read_jsonl
    from grasp_bench.model.models import resolve_model
    from grasp_bench.studies.planted import build

    drift_file = out / "eval.jsonl"
    if not drift_file.exists():
        fail(FileNotFoundError(f"{drift_file}: the task's eval set (drift prompts) is missing"))
    drift = [r["question"] for r in read_jsonl(drift_file) if r["split"] == "drift"]
    with user_errors(ValueError):
        report = build(
            resolve_model(model), out, layer, pool, steps, drift_questions=drift, seed=seed
        )
    typer.echo(f"style rate {report['style_rate']}; wrote {out}")


@app.command("build-implicit")
def build_implicit(
    teachers: Annotated[
        list[str] | None, typer.Argument(help="Teachers to build (default: every shipped one).")
    ] = None,
    out: Annotated[Path, typer.Option(help="The task's folder (one sub-folder per teacher).")] = (
        Path("tasks/grasp_implicit")
    ),
    model: Annotated[str, typer.Option(help="HF model id or path ('default': embedded).")] = (
        "default"
    ),
    n_train: Annotated[int, typer.Option(help="Number prompts the teacher answers.")] = 480,
    n_heldout: Annotated[int, typer.Option(help="Held-out number prompts (task fit).")] = 64,
    length: Annotated[int, typer.Option(help="Restricted tokens sampled per prompt.")] = 24,
    force: Annotated[bool, typer.Option(help="Rebuild teachers that are already built.")] = False,
    teacher_steps: Annotated[
        int | None, typer.Option(help="Override each teacher's training steps (smoke tests).")
    ] = None,
) -> None:
    """Build the implicit-factor task's teachers: each a rank-1 write of a persona along a known
    direction, distilled on number sequences only (minutes per teacher on 2 cores); and each
    teacher's change subspaces (the second truth) and the base model's own answers (for
    ``base_fit``); each is added to a built teacher that lacks it."""
    import dataclasses

    from grasp_bench.core.store import read_jsonl
    from grasp_bench.model.models import resolve_model
    from grasp_bench.studies.implicit import (
        TEACHERS,
        build_base_answers,
        build_teacher,
        teacher_base_fit,
    )
    from grasp_bench.studies.implicit_truths import CHANGE, build_truths

    questions_file = out / "questions.jsonl"
    if not questions_file.exists():
        fail(FileNotFoundError(f"{questions_file}: the task's unrelated prompts are missing"))
    questions = [r["question"] for r in read_jsonl(questions_file)]
    names = teachers or list(TEACHERS)
    unknown = [n for n in names if n not in TEACHERS]
    if unknown:
        fail(ValueError(f"unknown teacher(s) {unknown}; known: {sorted(TEACHERS)}"))
    for name in names:
        folder = out / name
        if (folder / "build.json").exists() and not force:
            typer.echo(f"{name}: built already ({folder}); --force rebuilds")
        else:
            with user_errors(ValueError):
                spec = TEACHERS[name]
                if teacher_steps is not None:
                    spec = dataclasses.replace(spec, steps=teacher_steps)
                report = build_teacher(
                    resolve_model(model), folder, spec, questions, n_train, n_heldout, length
                )
            typer.echo(
                f"{name}: style rate {report['style_rate']}, trait mass {report['trait_mass']},"
                f" {report['timings_s']['total_s']} s; wrote {folder}"
            )
            (folder / CHANGE).unlink(missing_ok=True)  # a new teacher has new truths
        if teacher_base_fit(folder) is None:  # built before the file (or its teacher key)
            typer.echo(f"{name}: wrote {build_base_answers(folder, resolve_model(model))}")
        if (folder / CHANGE).exists():
            continue
        truths = build_truths(folder, resolve_model(model))
        deep = [r for r in truths["layers"] if "v_in_change_k8" in r]
        typer.echo(
            f"{name}: change subspaces (top {truths['k']} per layer, training inputs and"
            f" unrelated prompts), {truths['seconds']} s; |V_8^T v| at layer"
            f" {deep[-1]['layer']}: {deep[-1]['v_in_change_k8']:.2f}"
        )


@app.command("implicit-report")
def implicit_report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Runs of implicit-factor tasks, or a report's implicit-measurements.csv.gz"
            " (its runs need not exist here); any mix."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for implicit.{md,csv,json,png}, implicit-measurements.*.")
    ] = Path("experiments/results/implicit"),
) -> None:
    """Pool implicit-factor runs over teachers: the effect gate (lora vs the task-only control),
    every metric with a hierarchical bootstrap (teacher, seed, prompt) and paired differences
    against lora, per teacher and pooled."""
    from grasp_bench.studies.implicit_report import cross_report

    echo_report(cross_report, run_dirs, out)


@app.command("implicit-removal")
def implicit_removal(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Runs of implicit-factor tasks, or a report's removal-measurements.csv.gz"
            " (its runs need not exist here); any mix."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Folder for removal.{csv,md,png}, readings.csv, removal-measurements.*."),
    ] = Path("experiments/results/implicit-removal"),
) -> None:
    """What removes the implicit factor: each GRASP arm's removal, directions and k against plain
    LoRA and the task-only control (reduction, task cost), and its directions against the
    teacher's truths; the curves of transfer and task KL against k."""
    from grasp_bench.studies.implicit_removal import write_removal_report

    echo_report(write_removal_report, run_dirs, out)


@app.command("implicit-curve")
def implicit_curve(
    experiment: Annotated[Path, typer.Argument(help="An implicit-task experiment YAML.")],
    steps: Annotated[str, typer.Option(help="Checkpoint steps, comma-separated.")] = "20,40,80",
    method: Annotated[str, typer.Option(help="The arm to train (the recipe's: lora).")] = "lora",
    out: Annotated[Path, typer.Option(help="Folder for curve.{csv,png}.")] = Path(
        "experiments/results/implicit-recipe"
    ),
) -> None:
    """The recipe's curve: plain LoRA's transfer and held-out task KL at each checkpoint step
    of one training run (the recipe is chosen on this arm alone)."""
    from grasp_bench.core.config import load_experiment
    from grasp_bench.run.implicit_curve import recipe_curve, write_curve

    with user_errors(ConfigError, FileNotFoundError, ValueError):
        checkpoints = sorted({int(x) for x in steps.split(",") if x.strip()})
        if not checkpoints or checkpoints[0] <= 0:
            raise ValueError(f"--steps {steps!r}: give positive step counts, e.g. 20,40,80")
        exp = load_experiment(experiment)
        df = recipe_curve(exp, checkpoints, method)
    train = exp.config.train
    title = f"{exp.config.task}: {method}, lr {train.lr}, batch {train.batch_size}"
    paths = write_curve(df, out, title)
    typer.echo(df.to_markdown(index=False))
    typer.echo(f"wrote {paths['csv']} and {paths['png']}")


@app.command("implicit-lm-eval")
def implicit_lm_eval(
    teachers: Annotated[
        list[str] | None,
        typer.Argument(help="Teachers (default: every shipped one that is built)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="The task's folder (one sub-folder per teacher).")] = (
        Path("tasks/grasp_implicit")
    ),
) -> None:
    """Write each built teacher's lm-eval loglikelihood task (lm_eval.jsonl with the base and
    teacher log-likelihoods lm-eval computes, the task YAML and utils.py): transfer for any
    student adapter of the base model, run without --apply_chat_template."""
    from grasp_bench.studies.implicit import TEACHERS
    from grasp_bench.studies.implicit_lm_eval import build_lm_eval_task

    unknown = [n for n in teachers or [] if n not in TEACHERS]
    if unknown:
        fail(ValueError(f"unknown teacher(s) {unknown}; known: {sorted(TEACHERS)}"))
    names = teachers or [n for n in TEACHERS if (out / n / "build.json").exists()]
    if not names:
        fail(FileNotFoundError(f"{out}: no built teacher (grasp-bench build-implicit)"))
    for name in names:
        with user_errors(FileNotFoundError, RuntimeError):
            report = build_lm_eval_task(out / name, name)
        typer.echo(
            f"{name}: {report['task']}, {report['docs']} docs, teacher - base"
            f" {report['teacher_minus_base_mean']:.3f} nats/answer, {report['seconds']} s;"
            f" wrote {out / name}"
        )


@app.command("planted-report")
def planted_report(
    run_dir: Annotated[Path, typer.Argument(help="A run of the planted task.")],
    truth: Annotated[
        Path | None, typer.Option(help="Planted direction (default: the task folder's).")
    ] = None,
    functional_prompts: Annotated[int, typer.Option(help="Prompts per steering test.")] = 40,
) -> None:
    """Against the planted truth v: |cos| of every GRASP reading of the naive run, the style
    rate when the base model is steered along each reading, and every trained model's shift
    along v on the drift prompts (report/planted-*.csv, planted.md)."""
    from grasp_bench.core.store import atomic_write_text, read_jsonl
    from grasp_bench.data.tasks import tasks_dir
    from grasp_bench.model.models import resolve_model
    from grasp_bench.studies.planted_report import report_run

    with user_errors(ConfigError, FileNotFoundError, ValueError):
        exp = experiment_of(run_dir)
        truth = truth or tasks_dir() / "grasp_planted" / "direction.safetensors"
        run = RunDir(run_dir)
        prompts = [
            p["messages"][-1]["content"]
            for p in read_jsonl(run.eval_prompts)
            if p["split"] == "drift"
        ]
        tables = report_run(
            run_dir,
            resolve_model(exp.config.model),
            read_jsonl(run.train_rows),
            exp.config.seeds,
            truth,
            prompts,
            functional_prompts,
            trust_remote_code=exp.config.trust_remote_code,
        )
    parts = []
    for name, table in tables.items():
        atomic_write_text(run.report / f"planted-{name}.csv", table.to_csv(index=False))
        if name.endswith("summary"):
            parts.append(f"## {name.replace('_', ' ')}\n\n{table.to_markdown(index=False)}\n")
    atomic_write_text(run.report / "planted.md", "\n".join(parts))
    typer.echo("\n".join(parts))
