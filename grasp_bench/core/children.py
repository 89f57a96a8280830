"""Child processes that die with the run that started them.

A run starts heavy children (the vLLM generation process, a local judge server) and those
start their own workers. If the run is killed outright (SIGKILL, an OOM kill, a lost
terminal), nothing in the run gets to clean up, and the children would keep a GPU or the CPUs
busy. So each child is started under a small guard process:

- the guard asks the kernel for a signal when its parent (the run) dies (Linux
  ``PR_SET_PDEATHSIG``; elsewhere it polls its parent id once a second);
- it runs the command in a process group of its own, so the command's workers are in it too;
- on that signal, or on SIGTERM / SIGINT / SIGHUP, it ends the whole group (SIGTERM, then
  SIGKILL after a grace period) and exits.

``spawn_guarded`` returns the guard's ``Popen``: its exit status is the command's, and
terminating it ends the command's group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1
_ENDING_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def spawn_guarded(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> subprocess.Popen:
    """Start ``cmd`` under a guard that ends it (and its workers) when this process dies.

    The guard sits in a session of its own, so a Ctrl-C in the terminal reaches it once, and it
    passes the ending on to the command's group.
    """
    guard = [sys.executable, "-m", "grasp_bench.core.children", str(os.getpid()), "--", *cmd]
    return subprocess.Popen(guard, env=env, stdout=stdout, stderr=stderr, start_new_session=True)


def stop_guarded(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Ask a guarded child to end, and kill it if it has not after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # the guard itself hung: its command's group already had SIGKILL after GRACE_SECONDS
        proc.kill()
        proc.wait()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _ask_for_parent_death_signal() -> bool:
    """Linux: have the kernel send SIGTERM to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _end_group(child: subprocess.Popen) -> None:
    """SIGTERM to the command's group; SIGKILL to whatever is left after the grace period."""
    _kill_group(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
    # workers may outlive the leader: kill the group even when the leader has exited
    _kill_group(child.pid, signal.SIGKILL)
    child.wait()


def _guard(parent_pid: int, cmd: list[str]) -> int:
    ending = threading.Event()
    for sig in _ENDING_SIGNALS:
        signal.signal(sig, lambda *_: ending.set())
    kernel_watches = _ask_for_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the watch was in place
        return 1
    child = subprocess.Popen(cmd, start_new_session=True)
    while child.poll() is None:
        if ending.wait(0.2 if kernel_watches else 1.0) or os.getppid() != parent_pid:
            _end_group(child)
            return 128 + signal.SIGTERM
    _kill_group(child.pid, signal.SIGKILL)  # workers left behind by a leader that exited
    rc = child.returncode
    return 128 - rc if rc < 0 else rc  # killed by signal N: the shell's 128 + N


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        usage = "usage: python -m grasp_bench.core.children PARENT_PID -- COMMAND..."
        print(usage, file=sys.stderr)
        return 2
    return _guard(int(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
