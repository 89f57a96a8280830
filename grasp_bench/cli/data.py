"""``grasp-bench data`` (published data sets) and ``grasp-bench tasks`` (the registered tasks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grasp_bench.cli.base import (
    app,
    fail,
    user_errors,
)

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
        fail(ValueError("--from and --expect-sha256 take one set name"))
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
    from grasp_bench.data.taskspec import get_task, registered_tasks

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
    from grasp_bench.core.yaml_loader import import_plugin
    from grasp_bench.data.tasks import tasks_dir
    from grasp_bench.evaluate import lm_eval_export

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
                fail(ValueError(f"{len(problems)} lm-eval file(s) out of step with the specs;"
                                 " run `grasp-bench tasks export`"))  # fmt: skip
            typer.echo(f"lm-eval folders in {folder} match the task specs")
            return
        written = lm_eval_export.export(folder, task, plugins)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(written)} file(s) written; the rest already matched the specs")
