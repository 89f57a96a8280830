"""The command line's shared parts: the Typer app, and the one way a command fails on the
user's input."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from grasp_bench.core.rundir import RunDir
from grasp_bench.core.yaml_loader import ConfigError

app = typer.Typer(
    help="grasp-bench: drift vs task trade-offs of fine-tuning methods.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def fail(exc: Exception) -> None:
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


def fail_storage(exc: OSError) -> None:
    """``error:`` with the path and the reason, no traceback; finished work is kept (writes
    are atomic), so the same command resumes once it is fixed. Other OSErrors are raised."""
    hint = _STORAGE_HINTS.get(exc.errno)
    if hint is None:
        raise exc
    where = exc.filename2 or exc.filename or "a file"
    fail(
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
        fail(exc)
    except OSError as exc:
        fail_storage(exc)


def experiment_of(run_dir: Path) -> Any:
    """The experiment a run directory was started from (its snapshot, where it wrote one)."""
    import json

    from grasp_bench.core.config import load_experiment

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


def echo_report(write: Callable[[list[Path], Path], dict], run_dirs: list[Path], out: Path) -> None:
    """Write a report over runs into ``out``; print its Markdown, or fail with the reason."""
    with user_errors(FileNotFoundError, ValueError, KeyError):
        paths = write(run_dirs, out)
    typer.echo(paths["md"].read_text())
