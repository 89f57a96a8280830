"""``grasp-bench judge``: score runs, calibrate judges against labels, judge lm-eval samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grasp_bench.cli.base import (
    app,
    experiment_of,
    user_errors,
)
from grasp_bench.core.locks import LockHeld
from grasp_bench.core.rundir import RunDir
from grasp_bench.core.yaml_loader import ConfigError

judge_app = typer.Typer(help="Score runs with judges, and check judges.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


@judge_app.command("score")
def judge_score(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Score a run's completions with its configured judge (cached, resumable)."""
    from grasp_bench.run.pipeline import run_experiment

    with user_errors(ConfigError, LockHeld):
        out = run_experiment(experiment_of(run_dir), until="score")
    records = out.records
    unscored = sum(r["value"] is None for r in records)
    typer.echo(f"{len(records)} scores ({unscored} unscored) in {RunDir(out.run_dir).score}")


def _calibrate_help() -> str:
    from grasp_bench.evaluate.judge.calibrate import help_text

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
    from grasp_bench.core.config import JudgeConfig, load_experiment
    from grasp_bench.data.taskspec import get_task
    from grasp_bench.evaluate.judge.calibrate import calibrate, parse_thresholds
    from grasp_bench.evaluate.judge.calibration_output import (
        print_calibration,
        write_calibration,
    )
    from grasp_bench.evaluate.judge.labels import load_labels, split_part
    from grasp_bench.evaluate.scoring import open_judges

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

    from grasp_bench.evaluate.judge.coherence import fit_from_labels, write_coherence

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
    from grasp_bench.core.config import JudgeConfig, load_experiment
    from grasp_bench.core.store import atomic_write_json, atomic_write_jsonl
    from grasp_bench.data.taskspec import rubrics_of
    from grasp_bench.evaluate.judge.lm_eval_samples import (
        aggregate,
        lm_eval_task_of,
        registered_split,
        sample_rows,
    )
    from grasp_bench.evaluate.lm_eval_support import metrics_of
    from grasp_bench.evaluate.scoring import open_judges, score_rows

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
