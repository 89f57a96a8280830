"""A killed run leaves nothing running, on the real stack: a process that started a real vLLM
server (the ``local`` judge's kind) is SIGKILLed, and no process it started survives."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), fields[0])
    return found


def _descendants(root: int) -> set[int]:
    table = _processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def _running(pids: set[int]) -> set[int]:
    table = _processes()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
            return True
    except OSError:
        return False


def test_sigkilled_run_leaves_no_vllm_server_running(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from grasp_bench.model.models import resolve_model
        from grasp_bench.evaluate.server import VLLMServer
        server = VLLMServer(resolve_model("default"), log_path={str(tmp_path / "vllm.log")!r})
        server.start()
        print(server.port, flush=True)
        time.sleep(900)
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    started = set()
    try:
        port = int(run.stdout.readline())
        assert _answers(port)
        started = _descendants(run.pid)
        assert started, "the server should run as a child of the run"
        run.kill()
        run.wait()
        deadline = time.monotonic() + 60
        while _running(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _running(started), f"still running after the run was killed: {started}"
        assert not _answers(port)
    finally:
        if run.poll() is None:
            run.kill()
        for pid in _running(started):
            subprocess.run(["kill", "-9", str(pid)], check=False)
