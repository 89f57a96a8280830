"""One writer at a time per run directory and per leaderboard.

A second ``grasp-bench run`` on the same run directory (or a second ``submit``/``leaderboard
build`` on the same board) fails at once, naming the directory and the process that holds it,
instead of interleaving its writes with the first one's. The lock is an OS-level ``flock`` on
``<dir>/.lock`` (filelock): the kernel drops it when its process ends, however it ends, so a
killed run never blocks the next one. Whoever takes the lock removes the temporary files of
atomic writes that a killed writer left (no writer is alive then). The holder's pid is written
beside it (``.lock.pid``) only to be named in the message; nothing decides on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from grasp_bench.core.store import atomic_write_text, remove_leftovers

LOCK = ".lock"
HOLDER = ".lock.pid"

# one lock object per directory and process: taking a lock this process already holds just
# counts (run_experiment and the stages it calls may each ask), a second process is refused
_locks: dict[str, FileLock] = {}


class LockHeld(RuntimeError):
    """Another live process is writing the same directory."""


def _holder(directory: Path) -> str:
    """Who holds the lock, as far as its pid file says (it may lag the lock by a moment)."""
    try:
        pid = int((directory / HOLDER).read_text().split()[0])
        os.kill(pid, 0)  # the file may be a killed holder's: name only a live process
    except PermissionError:
        return f"process {pid}"  # alive, another user's
    except (OSError, ValueError, IndexError):
        return "another process"
    return f"process {pid}"


@contextmanager
def exclusive(directory: str | Path, what: str = "run directory") -> Iterator[Path]:
    """Hold ``directory`` (created if missing) for the block; raise ``LockHeld`` at once if
    another process holds it. Re-entrant within a process."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = str(directory.resolve())
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = FileLock(str(directory / LOCK), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LockHeld(
            f"{directory}: this {what} is in use by {_holder(directory)} (lock file "
            f"{directory / LOCK}); wait for it to finish or stop it, then run the same command "
            "again"
        ) from None
    try:
        if lock.lock_counter == 1:
            atomic_write_text(directory / HOLDER, f"{os.getpid()}\n")
            remove_leftovers(directory)  # temporary files of writers killed mid-write
        yield directory
    finally:
        if lock.lock_counter == 1:
            (directory / HOLDER).unlink(missing_ok=True)
        lock.release()
