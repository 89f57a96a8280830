"""``grasp-bench submit`` and ``grasp-bench leaderboard``: submissions and the board."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from grasp_bench.cli.base import (
    app,
    user_errors,
)
from grasp_bench.core.locks import LockHeld

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
