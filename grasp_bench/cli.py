"""The ``grasp-bench`` command line."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.locks import LockHeld
from grasp_bench.rundir import RunDir

app = typer.Typer(
    help="grasp-bench: drift vs task trade-offs of fine-tuning methods.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="The model under test.", no_args_is_help=True)
app.add_typer(model_app, name="model")
console = Console(stderr=True)


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


# a full disk or a folder that cannot be written is the user's to fix, not a bug
_STORAGE_HINTS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space",
    errno.EROFS: "make the folder writable",
    errno.EACCES: "make the folder writable",
    errno.EPERM: "make the folder writable",
}


def _fail_storage(exc: OSError) -> None:
    """``error:`` with the path and the reason, no traceback; finished work is kept (writes
    are atomic), so the same command resumes once it is fixed. Other OSErrors are raised."""
    hint = _STORAGE_HINTS.get(exc.errno)
    if hint is None:
        raise exc
    where = exc.filename2 or exc.filename or "a file"
    _fail(
        RuntimeError(
            f"{where}: {exc.strerror} ({errno.errorcode[exc.errno]}); finished work is "
            f"kept: {hint} and run the same command again"
        )
    )


@contextmanager
def user_errors(*kinds: type[Exception]) -> Iterator[None]:
    """The one way a command fails on the user's input: ``kinds`` (a bad config, a held lock,
    ...) end it with ``error: ...`` and exit status 2, no traceback; so do a full disk and an
    unwritable folder (finished work is kept); anything else is a bug and raises."""
    try:
        yield
    except kinds as exc:
        _fail(exc)
    except OSError as exc:
        _fail_storage(exc)


@model_app.command("prepare")
def model_prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if cached.")] = False,
) -> None:
    """Convert the embedded default model (GGUF) to a safetensors checkpoint; print its path."""
    from grasp_bench.models import prepare_default_model

    with user_errors(FileNotFoundError):
        path = prepare_default_model(force=force)
    typer.echo(str(path))


@app.command()
def run(config: Annotated[Path, typer.Argument(help="Experiment YAML.")]) -> None:
    """Run an experiment YAML end to end (resumes what an earlier run left)."""
    from grasp_bench.config import load_experiment
    from grasp_bench.pipeline import run_experiment

    with user_errors(ConfigError, LockHeld):
        run_experiment(load_experiment(config))


def _experiment_of(run_dir: Path):
    import json

    from grasp_bench.config import load_experiment

    run = RunDir(run_dir)
    if not run.marker.exists():
        raise ConfigError(
            f"{run_dir}: not a run directory (no {run.marker.name}); "
            "start it with `grasp-bench run CONFIG`"
        )
    found = json.loads(run.marker.read_text())
    # the experiment as it was run (not the YAML as edited since), when the run wrote one
    if found.get("snapshot") and (run / found["snapshot"]).exists():
        return load_experiment(run / found["snapshot"])
    return load_experiment(Path(found["config_path"]))


@app.command()
def generate(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Generate completions for every method's adapter of a run (its snapshotted settings)."""
    from grasp_bench.pipeline import run_experiment

    with user_errors(ConfigError, LockHeld):
        out = run_experiment(_experiment_of(run_dir), until="generate")
    typer.echo(f"{len(out['completions'])} completions in {RunDir(out['run_dir']).generate}")


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
    from grasp_bench.identification import identify_run
    from grasp_bench.models import resolve_model
    from grasp_bench.store import atomic_write_text, read_jsonl

    with user_errors(ConfigError, FileNotFoundError):
        exp = _experiment_of(run_dir)
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
    from grasp_bench.models import resolve_model
    from grasp_bench.planted import build
    from grasp_bench.store import read_jsonl

    drift_file = out / "eval.jsonl"
    if not drift_file.exists():
        _fail(FileNotFoundError(f"{drift_file}: the task's eval set (drift prompts) is missing"))
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

    from grasp_bench.implicit import BASE_ANSWERS, TEACHERS, build_base_answers, build_teacher
    from grasp_bench.implicit_truths import CHANGE, build_truths
    from grasp_bench.models import resolve_model
    from grasp_bench.store import read_jsonl

    questions_file = out / "questions.jsonl"
    if not questions_file.exists():
        _fail(FileNotFoundError(f"{questions_file}: the task's unrelated prompts are missing"))
    questions = [r["question"] for r in read_jsonl(questions_file)]
    names = teachers or list(TEACHERS)
    unknown = [n for n in names if n not in TEACHERS]
    if unknown:
        _fail(ValueError(f"unknown teacher(s) {unknown}; known: {sorted(TEACHERS)}"))
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
        if not (folder / BASE_ANSWERS).exists():  # a teacher built before the file existed
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
    run_dirs: Annotated[list[Path], typer.Argument(help="Runs of implicit-factor tasks.")],
    out: Annotated[Path, typer.Option(help="Folder for implicit.{md,csv,json,png}.")] = Path(
        "experiments/results/implicit"
    ),
) -> None:
    """Pool implicit-factor runs over teachers: the effect gate (lora vs the task-only control),
    every metric with a hierarchical bootstrap (teacher, seed, prompt) and paired differences
    against lora, per teacher and pooled."""
    from grasp_bench.implicit_report import cross_report

    _echo_report(cross_report, run_dirs, out)


@app.command("implicit-removal")
def implicit_removal(
    run_dirs: Annotated[list[Path], typer.Argument(help="Runs of implicit-factor tasks.")],
    out: Annotated[Path, typer.Option(help="Folder for removal.{csv,md,png}, readings.csv.")] = (
        Path("experiments/results/implicit-removal")
    ),
) -> None:
    """What removes the implicit factor: each GRASP arm's removal, directions and k against plain
    LoRA and the task-only control (reduction, task cost), and its directions against the
    teacher's truths; the curves of transfer and task KL against k."""
    from grasp_bench.implicit_removal import write_removal_report

    _echo_report(write_removal_report, run_dirs, out)


def _echo_report(
    write: Callable[[list[Path], Path], dict], run_dirs: list[Path], out: Path
) -> None:
    """Write a report over runs into ``out``; print its Markdown, or fail with the reason."""
    with user_errors(FileNotFoundError, ValueError, KeyError):
        paths = write(run_dirs, out)
    typer.echo(paths["md"].read_text())


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
    from grasp_bench.config import load_experiment
    from grasp_bench.implicit_curve import recipe_curve, write_curve

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
    from grasp_bench.implicit import TEACHERS
    from grasp_bench.implicit_lm_eval import build_lm_eval_task

    unknown = [n for n in teachers or [] if n not in TEACHERS]
    if unknown:
        _fail(ValueError(f"unknown teacher(s) {unknown}; known: {sorted(TEACHERS)}"))
    names = teachers or [n for n in TEACHERS if (out / n / "build.json").exists()]
    if not names:
        _fail(FileNotFoundError(f"{out}: no built teacher (grasp-bench build-implicit)"))
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
    from grasp_bench.data.tasks import tasks_dir
    from grasp_bench.models import resolve_model
    from grasp_bench.planted_report import report_run
    from grasp_bench.store import atomic_write_text, read_jsonl

    with user_errors(ConfigError, FileNotFoundError, ValueError):
        exp = _experiment_of(run_dir)
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


judge_app = typer.Typer(help="Score runs with judges, and check judges.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


@judge_app.command("score")
def judge_score(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Score a run's completions with its configured judge (cached, resumable)."""
    from grasp_bench.pipeline import run_experiment

    with user_errors(ConfigError, LockHeld):
        out = run_experiment(_experiment_of(run_dir), until="score")
    records = out["records"]
    unscored = sum(r["value"] is None for r in records)
    typer.echo(f"{len(records)} scores ({unscored} unscored) in {RunDir(out['run_dir']).score}")


def _calibrate_help() -> str:
    from grasp_bench.judge.calibrate import help_text

    return help_text()


@judge_app.command(
    "calibrate",
    help=_calibrate_help(),
    short_help="Check a judge against reference labels: agreement statistics with 95% CIs.",
)
def judge_calibrate(
    labels: Annotated[Path, typer.Argument(help="Reference labels, JSONL or CSV.")],
    config: Annotated[
        Path | None,
        typer.Option(help="Experiment YAML whose judge section to calibrate (LLM judges)."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="offline: the offline judges (the default).")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Also compare this task's yes/no metrics.")
    ] = None,
    rubric: Annotated[
        list[str] | None, typer.Option(help="Only these rubrics (default: every labelled one).")
    ] = None,
    threshold: Annotated[
        list[str] | None, typer.Option(help="RUBRIC=VALUE: move a rubric's threshold.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the statistics here (and <stem>.items.jsonl).")
    ] = None,
    part: Annotated[
        str,
        typer.Option(help="all, or dev / test: the questions whose sha256 is even / odd."),
    ] = "all",
) -> None:
    from grasp_bench.config import JudgeConfig, load_experiment
    from grasp_bench.judge.calibrate import (
        calibrate,
        parse_thresholds,
        print_calibration,
        write_calibration,
    )
    from grasp_bench.judge.labels import load_labels, split_part
    from grasp_bench.scoring import open_judges
    from grasp_bench.taskspec import get_task

    with user_errors(ConfigError, FileNotFoundError):
        if config and kind:
            raise ConfigError("--config and --kind exclude each other")
        if kind not in (None, "offline"):
            raise ConfigError(f"--kind {kind}: only offline; LLM judges come with --config")
        thresholds = parse_thresholds(threshold or [])
        reference = split_part(load_labels(labels), part)
        for r in rubric or []:
            if r not in reference.rubrics:
                raise ConfigError(f"--rubric {r}: no labels for it in {labels}")
        judge_cfg, cache, log = JudgeConfig(), None, None
        if config:  # loading it imports its plugins, which may register the task
            exp = load_experiment(config).config
            judge_cfg = exp.judge
            cache = exp.judge_cache
            if judge_cfg.kind == "local":
                log = Path(exp.output_dir) / "judge-server-calibrate.log"
                log.parent.mkdir(parents=True, exist_ok=True)
        try:
            spec = get_task(task) if task else None
        except KeyError as exc:
            raise ConfigError(exc.args[0]) from None
        wanted = rubric or reference.rubrics
        with open_judges(judge_cfg, wanted, cache, log, progress=True) as judges:
            missing = [r for r in wanted if r not in judges]
            if (rubric and missing) or len(missing) == len(wanted):
                raise ConfigError(
                    f"no judge grades {', '.join(missing)} under the {judge_cfg.name} judge"
                    " config (an LLM judge comes with --config EXPERIMENT.yaml)"
                )
            result = calibrate(reference, judges, wanted, spec, thresholds)
    print_calibration(result, judge_cfg.name)
    if out:
        items = write_calibration(result, reference, out)
        typer.echo(f"calibration: {out} (items: {items})")


@judge_app.command("fit-coherence")
def judge_fit_coherence(
    labels: Annotated[list[Path], typer.Argument(help="Label files with coherent labels.")],
    out: Annotated[Path, typer.Option(help="The fitted judge's YAML.")],
    version: Annotated[int, typer.Option(help="The judge's version (a refit is a new one).")],
    part: Annotated[str, typer.Option(help="dev (the default), test or all.")] = "dev",
    scorer: Annotated[str, typer.Option(help="The scorer LM (default: the embedded one).")] = (
        "default"
    ),
) -> None:
    """Fit the offline coherence judge on the reference labels' dev parts; calibrate it after
    with `judge calibrate ... --part test`, on answers it was not fitted on."""
    import shlex

    from grasp_bench.judge.coherence import fit_from_labels, write_coherence

    with user_errors(ConfigError, ValueError):
        spec = fit_from_labels(labels, part, scorer, version)
    options = ["--version", str(version), "--out", str(out), "--part", part, "--scorer", scorer]
    spec.command = shlex.join(
        ["grasp-bench", "judge", "fit-coherence", *map(str, labels), *options]
    )
    write_coherence(spec, out)
    n = sum(f.n for f in spec.fitted_on)
    typer.echo(f"coherence judge v{version}: {n} items, written to {out}")


@judge_app.command("lm-eval")
def judge_lm_eval(
    samples: Annotated[Path, typer.Argument(help="lm-eval's samples_<task>_<time>.jsonl.")],
    config: Annotated[
        Path | None, typer.Option(help="Experiment YAML whose judge section to use.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="The lm-eval task (default: from the name).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for results.json and records.")] = None,
) -> None:
    """Score lm-eval's logged samples (``--predict_only --log_samples``) in one batch through
    the project's scoring path and judge cache; writes lm-eval-shaped results and records."""
    from grasp_bench.config import JudgeConfig, load_experiment
    from grasp_bench.judge.lm_eval_samples import (
        aggregate,
        lm_eval_task_of,
        registered_split,
        sample_rows,
    )
    from grasp_bench.lm_eval_support import metrics_of
    from grasp_bench.scoring import open_judges, score_rows
    from grasp_bench.store import atomic_write_json, atomic_write_jsonl
    from grasp_bench.taskspec import rubrics_of

    with user_errors(ConfigError):
        lm_task = lm_eval_task_of(samples, task)
        name, split = registered_split(lm_task)
        rows = sample_rows(samples, split)
        judge_cfg, cache = JudgeConfig(), None
        if config:
            exp = load_experiment(config).config
            judge_cfg = exp.judge
            cache = exp.judge_cache
        metrics = metrics_of(name, split)
        with open_judges(judge_cfg, rubrics_of(metrics), cache, progress=True) as judges:
            records = score_rows(rows, metrics, judges)
    results = {lm_task: aggregate(records)}
    folder = out or samples.parent
    atomic_write_json(folder / f"{samples.stem}.judged.json", {"results": results})
    atomic_write_jsonl(folder / f"{samples.stem}.records.jsonl", records)
    for metric, value in results[lm_task].items():
        typer.echo(f"{lm_task} {metric}: {value:.4f}")
    typer.echo(f"results: {folder / f'{samples.stem}.judged.json'}")


board_app = typer.Typer(help="The public trade-off leaderboard.", no_args_is_help=True)
app.add_typer(board_app, name="leaderboard")


@app.command()
def submit(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    method: Annotated[list[str] | None, typer.Option(help="Only these methods.")] = None,
    board: Annotated[Path, typer.Option(help="Leaderboard directory.")] = Path("leaderboard"),
) -> None:
    """Write a run's methods into leaderboard/submissions/ (then open a pull request)."""
    from grasp_bench.leaderboard.submit import run_submissions
    from grasp_bench.leaderboard.validate import validate_submission

    with user_errors(LockHeld, ValueError):
        written = run_submissions(run_dir, board, method)
    bad = False
    for sub in written:
        problems = validate_submission(sub, board)
        bad |= bool(problems)
        typer.echo(f"{sub}: {'ok' if not problems else 'INVALID'}")
        for p in problems:
            typer.echo(f"  {p}")
    if bad:
        raise typer.Exit(1)


@board_app.command("validate")
def board_validate(
    board: Annotated[Path, typer.Argument(help="Leaderboard directory.")] = Path("leaderboard"),
) -> None:
    """Check every submission: schema, comparability with the baselines, recomputed metrics,
    no executable content, sizes and safe names."""
    from grasp_bench.leaderboard.validate import validate_all

    results = validate_all(board)
    failed = {s: p for s, p in results.items() if p}
    for sub, problems in results.items():
        typer.echo(f"{sub}: {'ok' if not problems else 'REJECTED'}")
        for p in problems:
            typer.echo(f"  {p}")
    if not results:
        typer.echo(f"{board}: no submissions")
    if failed:
        raise typer.Exit(1)


@board_app.command("build")
def board_build(
    board: Annotated[Path, typer.Argument(help="Leaderboard directory.")] = Path("leaderboard"),
) -> None:
    """Rebuild the board (Markdown, CSV, plots, HTML) from the submissions; print the table."""
    from grasp_bench.leaderboard.build import build_board, collect, table
    from grasp_bench.leaderboard.schema import write_json_schemas

    with user_errors(LockHeld):
        write_json_schemas(board / "schema")
        paths = build_board(board)
    from rich.console import Console
    from rich.table import Table

    shown = table(collect(board))
    t = Table(title="grasp-bench leaderboard")
    cols = [
        "task",
        "method",
        "drift (95% CI)",
        "task score (95% CI)",
        "drift reduction vs lora",
        "task kept vs lora",
        "pareto",
        "backend",
    ]
    for c in cols:
        t.add_column(c)
    for _, row in shown.iterrows():
        t.add_row(*[str(row[c]) for c in cols])
    Console(width=170).print(t)
    typer.echo(f"board: {paths['md']} {paths['html']}")


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="Experiment YAML.")]) -> None:
    """Check an experiment YAML and the recipes it names, without running anything."""
    from grasp_bench.config import load_experiment
    from grasp_bench.pipeline import check_published_refs, load_recipes

    with user_errors(ConfigError):
        exp = load_experiment(config)
        recipes = load_recipes(exp)
        check_published_refs(exp)
    typer.echo(f"{config}: ok ({', '.join(r.label for r in recipes)})")


data_app = typer.Typer(help="Published data sets: fetch, pin and list.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def data_fetch(
    names: Annotated[
        list[str], typer.Argument(help="Sets in the registry (`grasp-bench data list`).")
    ],
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="Register this local copy instead of downloading."),
    ] = None,
    expect_sha256: Annotated[
        str | None,
        typer.Option(help="The digest to accept instead of the registry's (an unchecked claim)."),
    ] = None,
) -> None:
    """Download a published set at its pinned commit (or register a local copy) into the cache,
    checked against its sha256 and row count; a second fetch is a no-op."""
    from grasp_bench.data.published import PublishedDataError, fetch, lookup

    if (from_file or expect_sha256) and len(names) > 1:
        _fail(ValueError("--from and --expect-sha256 take one set name"))
    for name in names:
        with user_errors(PublishedDataError):
            path, manifest, fetched = fetch(lookup(name), from_file, expect_sha256)
        verb = "fetched" if fetched else "already fetched"
        typer.echo(
            f"{name}: {verb} {path} ({manifest['rows']} rows, sha256 {manifest['sha256']});"
            f" use it as published:{name}"
        )


@data_app.command("list")
def data_list() -> None:
    """The registered published sets, their kind, and whether each is in the cache."""
    from grasp_bench.data.published import MANIFEST, folder, registry

    for name, entry in registry().items():
        have = "fetched" if (folder(name) / MANIFEST).exists() else "not fetched"
        how = "url" if entry.url else "--from (see registry: obtain)"
        typer.echo(f"{name:24s} {entry.kind:9s} {have:11s} {how:30s} {entry.paper}")


tasks_app = typer.Typer(
    help="The registered tasks; `tasks export` writes their lm-eval folders.",
    invoke_without_command=True,
)
app.add_typer(tasks_app, name="tasks")


@tasks_app.callback()
def tasks(
    ctx: typer.Context,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats", help="Per generated task: distinct targets, templates, near duplicates."
        ),
    ] = False,
    n_train: Annotated[int, typer.Option(help="--stats: rows drawn from each generator.")] = 6000,
) -> None:
    """List the registered tasks with their drift and task metrics, and where the lm-eval task
    folders are (for ``lm_eval --include_path``)."""
    if ctx.invoked_subcommand is not None:
        return
    from grasp_bench.data.tasks import tasks_dir
    from grasp_bench.taskspec import get_task, registered_tasks

    if stats:
        from grasp_bench.data.diversity import build_largest, data_stats

        typer.echo(f"generated training data at n_train={n_train} (seed 0): smoke-test data,"
                   " not the published sets (grasp-bench data list)")  # fmt: skip
        for name in registered_tasks():
            if get_task(name).evaluate is not None:
                continue  # teacher-forced tasks train on stored distributions, not chat targets
            try:
                data, _ = build_largest(name, n_train)
            except (ValueError, FileNotFoundError) as exc:
                typer.echo(f"{name:15s} (not built here: {exc})")
                continue
            st = data_stats(data.train, data.eval_prompts)
            typer.echo(
                f"{name:15s} rows {st['rows']:5d}  distinct targets {st['distinct targets']:5d}"
                f"  repeated rows {st['repeated rows']:6.1%}"
                f"  templates {st['distinct templates']:5d}"
                f"  near-duplicates {st['near-duplicate rate']:6.1%}"
                f"  distinct prompts {st['distinct prompts']:5d}"
                f"  eval/train overlap {st['eval/train overlap']:6.1%}"
            )
        return
    for name in registered_tasks():
        spec = get_task(name)
        typer.echo(
            f"{name:15s} drift={spec.drift_metric.name} task={spec.task_metric.name}  "
            f"{spec.description}"
        )
    typer.echo(f"lm-eval task folders: {tasks_dir()}")


@tasks_app.command("export")
def tasks_export(
    out: Annotated[
        Path | None, typer.Option(help="Folder of the lm-eval tasks (default: the shipped one).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; fail if a folder differs from its spec.")
    ] = False,
    task: Annotated[
        list[str] | None, typer.Option(help="Only this registered task's folders (repeatable).")
    ] = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(help="A module that registers tasks; its tasks' utils.py imports it."),
    ] = None,
) -> None:
    """Write each registered task's lm-eval folders (YAML with its metric_list, utils.py,
    README, the generated eval set) from its spec; --check lists what differs instead."""
    from grasp_bench import lm_eval_export
    from grasp_bench.core.yaml_loader import import_plugin
    from grasp_bench.data.tasks import tasks_dir

    plugins = tuple(plugin or ())
    with user_errors(ValueError, KeyError):
        for module in plugins:
            import_plugin(module)
        folder = out or tasks_dir()
        if check:
            problems = lm_eval_export.check(folder, task, plugins)
            for line in problems:
                typer.echo(line, err=True)
            if problems:
                _fail(ValueError(f"{len(problems)} lm-eval file(s) out of step with the specs;"
                                 " run `grasp-bench tasks export`"))  # fmt: skip
            typer.echo(f"lm-eval folders in {folder} match the task specs")
            return
        written = lm_eval_export.export(folder, task, plugins)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(written)} file(s) written; the rest already matched the specs")


@app.command()
def methods() -> None:
    """List the registered methods."""
    from grasp_bench.methods import get_method_class, registered_methods

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
    from grasp_bench.config import ExperimentConfig, LoadedExperiment
    from grasp_bench.pipeline import load_recipes, train_targets

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

    from grasp_bench.costplan import Assumptions, plan_sweep_cost

    price = None
    if judge_price:
        try:
            inp, out = (float(x) for x in judge_price.split(","))
        except ValueError:
            _fail(ConfigError(f"--judge-price {judge_price}: expected IN,OUT, e.g. 2.5,10"))
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
    from rich.console import Console

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
    console.print(f"assumptions: {a.describe()} (see grasp_bench/costplan.py)", highlight=False)
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
    from grasp_bench.sweep import load_sweep, plan_sweep, publish, run_sweep

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
        _fail(exc)
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


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
