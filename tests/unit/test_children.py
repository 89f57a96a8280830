"""A killed run leaves nothing running: guarded children and their workers die with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grasp_bench.core.children import spawn_guarded, stop_guarded

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# a command with a worker of its own, as vLLM has: both pids written, then both sleep
WORKER_COMMAND = 'sleep 300 & echo "$$ $!" > "$1"; wait'


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's init may not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _start_run(tmp_path: Path, guarded: bool) -> tuple[subprocess.Popen, list[int]]:
    """A stand-in for a run: a Python process that starts the command, then waits."""
    pids_file = tmp_path / "pids"
    start = (
        "from grasp_bench.core.children import spawn_guarded as start"
        if guarded
        else "from subprocess import Popen as start"
    )
    script = textwrap.dedent(
        f"""
        import sys, time
        {start}
        start(["bash", "-c", {WORKER_COMMAND!r}, "worker", {str(pids_file)!r}])
        time.sleep(300)
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script])
    assert _wait_until(lambda: pids_file.exists() and pids_file.read_text().strip().count(" "))
    pids = [int(p) for p in pids_file.read_text().split()]
    return run, pids


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_sigkilled_run_takes_its_guarded_child_and_workers_with_it(tmp_path: Path) -> None:
    run, pids = _start_run(tmp_path, guarded=True)
    try:
        assert all(_alive(pid) for pid in pids)
        run.kill()
        run.wait()
        assert _wait_until(lambda: not any(_alive(pid) for pid in pids)), (
            f"children still running after the run was SIGKILLed: {pids}"
        )
    finally:
        _kill_all(pids)


def test_without_the_guard_the_children_outlive_a_sigkilled_run(tmp_path: Path) -> None:
    """The control: the test above would fail if spawning were not guarded."""
    run, pids = _start_run(tmp_path, guarded=False)
    try:
        run.kill()
        run.wait()
        time.sleep(1.5)
        assert all(_alive(pid) for pid in pids)
    finally:
        _kill_all(pids)


def test_stop_ends_the_command_and_its_workers(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    proc = spawn_guarded(["bash", "-c", WORKER_COMMAND, "worker", str(pids_file)])
    assert _wait_until(lambda: pids_file.exists() and pids_file.read_text().strip().count(" "))
    pids = [int(p) for p in pids_file.read_text().split()]
    try:
        stop_guarded(proc, timeout=20)
        assert proc.returncode == 128 + signal.SIGTERM
        assert _wait_until(lambda: not any(_alive(pid) for pid in pids))
    finally:
        _kill_all(pids)


@pytest.mark.parametrize(("script", "code"), [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137)])
def test_the_guard_exits_with_the_commands_status(script: str, code: int) -> None:
    proc = spawn_guarded(["bash", "-c", script])
    assert proc.wait(timeout=30) == code


def test_output_goes_where_the_caller_sends_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = spawn_guarded(
            [sys.executable, "-c", "import json; print(json.dumps({'ok': 1}))"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        assert proc.wait(timeout=30) == 0
    assert json.loads(log.read_text()) == {"ok": 1}
