"""One writer per run directory and per board: a second run, submit or build fails at once with
the directory and the holder's pid; a holder killed with SIGKILL never blocks the next one; two
processes writing the same judge cache both succeed and lose nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grasp_bench.core.locks import HOLDER, LOCK, LockHeld, exclusive
from tests.unit.test_crash_resume import (
    run_cli,
    start_cli,
    wait_cli,
    warm_imports,
    write_experiment,
)

REPO = Path(__file__).resolve().parents[2]

HOLD = """\
import sys, time
from pathlib import Path
from grasp_bench.core.locks import exclusive
with exclusive(Path(sys.argv[1]), sys.argv[2]):
    Path(sys.argv[3]).touch()
    time.sleep(600)
"""


def _wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _holder(directory: Path, what: str, tmp_path: Path) -> subprocess.Popen:
    """A separate Python process holding ``directory``'s lock until it is killed."""
    held = tmp_path / f"held-{os.urandom(4).hex()}"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), what, str(held)], cwd=REPO)
    _wait_for(held)
    return proc


def _sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_a_second_run_on_the_same_directory_fails_at_once_naming_the_holder(tiny_model, tmp_path):
    """Run A is paused inside training; run B of the same experiment is refused while A
    waits, with exit 2 and one ``error:`` line; A then finishes untouched."""
    warm_imports()
    exp = write_experiment(tmp_path, tiny_model)
    run = tmp_path / "runs" / "crash"
    paused, go = tmp_path / "paused", tmp_path / "go"

    def pause_in_training() -> None:
        from grasp_bench.train import trainer as training

        real = training.lr_at

        def lr_at(step, cfg):
            if step == 1 and not go.exists():
                paused.touch()
                while not go.exists():
                    time.sleep(0.01)
            return real(step, cfg)

        training.lr_at = lr_at

    first = start_cli(["run", str(exp)], tmp_path / "a.txt", arm=pause_in_training)
    try:
        _wait_for(paused)
        started = time.monotonic()
        second = run_cli(["run", str(exp)], tmp_path / "b.txt")
        took = time.monotonic() - started
    finally:
        go.touch()
    done = wait_cli(first, tmp_path / "a.txt")
    assert done.code == 0, done.output
    assert second.code == 2, second.output
    assert "Traceback" not in second.output
    expected = f"error: {run}: this run directory is in use by process {first}"
    assert expected in " ".join(second.output.split())
    assert took < 60  # it did not wait for A (which waited for it to finish)
    assert (run / "report" / "results.json").exists()
    assert not (run / HOLDER).exists()  # A let go on exit


def test_a_killed_holder_never_blocks_the_next_run(tmp_path):
    run = tmp_path / "runs" / "x"
    proc = _holder(run, "run directory", tmp_path)
    try:
        with pytest.raises(LockHeld) as refused, exclusive(run):
            pass
        assert f"{run}: this run directory is in use by process {proc.pid}" in str(refused.value)
    finally:
        _sigkill(proc)
    assert (run / HOLDER).read_text().strip() == str(proc.pid)  # left behind by the kill
    with exclusive(run):  # the kernel dropped the killed holder's lock with its process
        assert (run / HOLDER).read_text().strip() == str(os.getpid())
        with exclusive(run):  # the same process again: re-entrant
            pass
        assert (run / HOLDER).exists()
    assert not (run / HOLDER).exists() and (run / LOCK).exists()


def test_a_dead_pid_in_the_holder_file_is_not_named(tmp_path):
    """The pid file may lag the lock for a moment (a new holder that has not written it yet
    after a killed one): a pid that is not alive is never blamed."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "open(sys.argv[2], 'w').close()\n"
            "time.sleep(600)\n",
            str(tmp_path / LOCK),
            str(held),
        ]
    )
    try:
        _wait_for(held)
        (tmp_path / HOLDER).write_text(f"{proc.pid}\n")
        with pytest.raises(LockHeld, match="in use by another process"), exclusive(tmp_path):
            pass
    finally:
        _sigkill(holder)


def test_submit_and_build_to_a_held_board_fail_at_once(tmp_path):
    from typer.testing import CliRunner

    from grasp_bench.cli import app
    from grasp_bench.leaderboard.build import build_board
    from grasp_bench.leaderboard.submit import run_submissions

    board = tmp_path / "board"
    proc = _holder(board, "leaderboard", tmp_path)
    try:
        message = f"{board}: this leaderboard is in use by process {proc.pid}"
        with pytest.raises(LockHeld, match="in use by"):
            build_board(board)
        with pytest.raises(LockHeld, match="in use by"):
            run_submissions(tmp_path / "some-run", board)
        for args in (
            ["leaderboard", "build", str(board)],
            ["submit", "run", "--board", str(board)],
        ):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2, result.output
            assert f"error: {message}" in " ".join(result.output.split())
            assert result.exception is None or isinstance(result.exception, SystemExit)
    finally:
        _sigkill(proc)
    with exclusive(board, "leaderboard"):
        pass


WRITER = """\
import sys, time
from pathlib import Path
from grasp_bench.evaluate.judge.cache import JudgeCache
path, who, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
cache = JudgeCache(path)  # both open (and switch to WAL) at the same moment
for i in range(200):
    cache.put(f"{who}-{i}", {"value": i, "who": who, "text": "x" * 500})
    if i % 4 == 0:  # and both write the same keys
        cache.put(f"shared-{i}", {"value": i, "who": "both"})
"""


def test_two_processes_writing_one_judge_cache_lose_nothing(tmp_path):
    from grasp_bench.evaluate.judge.cache import JudgeCache

    path, go = tmp_path / "judge.sqlite", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(path), who, str(go)],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    time.sleep(0.5)  # both waiting at the start line
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    cache = JudgeCache(path)
    assert len(cache) == 2 * 200 + 50
    for who in ("a", "b"):
        for i in range(200):
            assert cache.get(f"{who}-{i}") == {"value": i, "who": who, "text": "x" * 500}
    assert all(cache.get(f"shared-{i}") == {"value": i, "who": "both"} for i in range(0, 200, 4))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
