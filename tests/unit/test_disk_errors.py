"""A full disk or a read-only folder mid-run: the CLI prints one ``error:`` line naming the file
and the reason, exits 2 without a traceback, every file written before is whole and every file
that was there is unchanged, no temporary file is left, and the same command finishes once the
disk is fixed.

Running as root (as in CI containers) a chmod does not stop a write, so the faults are injected
into the atomic writer in the CLI's own process: ENOSPC at the ``fsync`` of a chosen file (the
data did not fit) or EROFS when its temporary file is created (the folder is read-only). The
chmod variant runs where it takes effect."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import types
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.unit.test_crash_resume import check_whole, run_cli, warm_imports, write_experiment


def fail_write(pattern: str, err: int) -> Callable[[], None]:
    """Armed in the CLI's process: the atomic write of a file matching ``pattern`` fails with
    ``err`` (ENOSPC at its fsync, after part of it was written; anything else when its
    temporary file is created), as the file system would fail it."""

    def arm() -> None:
        import tempfile

        from grasp_bench.core import store

        writing = [False]

        def mkstemp(*, dir, prefix, suffix):  # as store calls it
            target = str(Path(dir) / prefix[1:-1])
            writing[0] = fnmatch(target, pattern)
            if writing[0] and err != errno.ENOSPC:
                raise OSError(err, os.strerror(err), str(Path(dir) / f"{prefix}x{suffix}"))
            return tempfile.mkstemp(dir=dir, prefix=prefix, suffix=suffix)

        def fsync(fd: int) -> None:
            if writing[0]:
                raise OSError(err, os.strerror(err))
            os.fsync(fd)

        store.tempfile = types.SimpleNamespace(mkstemp=mkstemp)
        store.os = types.SimpleNamespace(**{**vars(os), "fsync": fsync})

    return arm


def hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".lock")
    }


# rewritten by every `run` to name the config that ran (its path is this test's copy)
REWRITTEN = {"runs/crash/experiment.json", "runs/crash/experiment.yaml"}


def assert_clean_failure(done, path: Path, err: int) -> None:
    out = " ".join(done.output.split())
    assert done.code == 2, done.output
    assert "Traceback" not in done.output, done.output
    reason = f"{os.strerror(err)} ({errno.errorcode[err]})"
    assert f"error: {path}: {reason}; finished work is kept" in out, done.output


def assert_unchanged(before: dict[str, str], root: Path) -> None:
    after = hashes(root)
    changed = [p for p, h in before.items() if p not in REWRITTEN and after.get(p) != h]
    assert not changed, changed
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def finished(tiny_model, tmp_path_factory):
    """A finished run, submitted to a built board (copied by each test)."""
    warm_imports()
    root = tmp_path_factory.mktemp("finished")
    exp = write_experiment(root, tiny_model)
    run, board = root / "runs" / "crash", root / "board"
    for args in (
        ["run", str(exp)],
        ["submit", str(run), "--board", str(board)],
        ["leaderboard", "build", str(board)],
    ):
        done = run_cli(args, root / "log.txt")
        assert done.code == 0, done.output
    return root


def _copy(finished: Path, tmp_path: Path, tiny_model: str, drop: tuple[str, ...] = ()) -> Path:
    """The finished run and board under ``tmp_path``, with the experiment pointing there and
    the ``drop``ped stage folders gone (as if the run had stopped before them)."""
    for name in ("runs", "board"):
        shutil.copytree(finished / name, tmp_path / name)
    write_experiment(tmp_path, tiny_model)
    for part in drop:
        shutil.rmtree(tmp_path / "runs" / "crash" / part)
    return tmp_path / "crash.yaml"


def test_disk_full_in_the_data_stage_keeps_no_half_file(tiny_model, tmp_path):
    warm_imports()
    exp = write_experiment(tmp_path, tiny_model)
    data = tmp_path / "runs" / "crash" / "data"
    done = run_cli(
        ["run", str(exp)], tmp_path / "log.txt", arm=fail_write("*/eval.jsonl", errno.ENOSPC)
    )
    assert_clean_failure(done, data / "eval.jsonl", errno.ENOSPC)
    assert (data / "train.jsonl").exists() and (data / "control.jsonl").exists()
    assert not (data / "eval.jsonl").exists() and not (data / "manifest.json").exists()
    check_whole(tmp_path / "runs" / "crash")
    assert_unchanged({}, tmp_path)


@pytest.mark.parametrize(
    ("drop", "target", "err"),
    [
        (("score", "report"), "score/scores.jsonl", errno.ENOSPC),
        (("report",), "report/results.json", errno.EROFS),  # results.csv is written first
    ],
    ids=["disk-full-scoring", "read-only-report"],
)
def test_a_failed_write_mid_run_loses_nothing_and_the_rerun_finishes(
    finished, tiny_model, tmp_path, drop, target, err
):
    exp = _copy(finished, tmp_path, tiny_model, drop)
    run = tmp_path / "runs" / "crash"
    before = hashes(tmp_path)
    done = run_cli(["run", str(exp)], tmp_path / "log.txt", arm=fail_write(f"*/{target}", err))
    assert_clean_failure(done, run / target, err)
    assert not (run / target).exists()
    assert_unchanged(before, tmp_path)
    check_whole(run)
    again = run_cli(["run", str(exp)], tmp_path / "again.txt")
    assert again.code == 0, again.output
    got, want = (
        json.loads((r / "report/results.json").read_text())
        for r in (run, finished / "runs" / "crash")
    )
    assert got["rows"] == want["rows"]


def test_submit_on_a_full_disk_leaves_the_board_as_it_was(finished, tiny_model, tmp_path):
    _copy(finished, tmp_path, tiny_model)
    run, board = tmp_path / "runs" / "crash", tmp_path / "board"
    before = hashes(board)
    done = run_cli(
        ["submit", str(run), "--board", str(board)],
        tmp_path / "log.txt",
        arm=fail_write("*/summary.json", errno.ENOSPC),
    )
    assert done.code == 2, done.output
    assert "summary.json: No space left on device (ENOSPC)" in " ".join(done.output.split())
    assert "Traceback" not in done.output
    assert hashes(board) == before  # the staged submission went, the published one stayed
    assert [p.name for p in board.iterdir() if p.name.startswith(".")] == [".lock"]


def test_board_build_on_a_read_only_file_keeps_the_old_page(finished, tiny_model, tmp_path):
    _copy(finished, tmp_path, tiny_model)
    board = tmp_path / "board"
    before = hashes(board)
    done = run_cli(
        ["leaderboard", "build", str(board)],
        tmp_path / "log.txt",
        arm=fail_write("*/index.html", errno.EROFS),
    )
    assert_clean_failure(done, board / "index.html", errno.EROFS)
    assert hashes(board) == before  # what it rewrote before index.html is byte for byte the same
    assert not [p for p in board.rglob("*") if p.name.endswith(".tmp")]


def test_a_read_only_folder_for_real(finished, tiny_model, tmp_path):
    """Where permissions bind (not root): the report folder made read-only."""
    exp = _copy(finished, tmp_path, tiny_model)
    report = tmp_path / "runs" / "crash" / "report"
    for path in report.iterdir():
        path.unlink()
    report.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH)
    try:
        if os.access(report, os.W_OK):
            pytest.skip("running as root: a read-only mode does not stop writes")
        before = hashes(tmp_path)
        done = run_cli(["run", str(exp)], tmp_path / "log.txt")
        assert_clean_failure(done, report / "results.csv", errno.EACCES)
        assert_unchanged(before, tmp_path)
    finally:
        report.chmod(0o755)


def test_a_full_judge_cache_fails_like_any_other_write_and_keeps_its_rows(tmp_path):
    """SQLite's 'database or disk is full' (here: a page limit) and 'readonly database' come out
    as the OSError (ENOSPC, EROFS) naming the cache that the CLI reports in one line; what was
    cached before stays readable."""
    import sqlite3

    from grasp_bench.evaluate.judge.cache import JudgeCache

    path = tmp_path / "judge.sqlite"
    cache = JudgeCache(path)
    cache.put("kept", {"value": 1})
    cache._conn().execute("PRAGMA max_page_count=4")
    with pytest.raises(OSError, match="database or disk is full") as full:
        for i in range(100):
            cache.put(f"k{i}", {"text": "x" * 2000})
    assert full.value.errno == errno.ENOSPC and full.value.filename == str(path)
    cache._conn().execute("PRAGMA query_only=1")
    with pytest.raises(OSError, match="readonly database") as read_only:
        cache.put("more", {"value": 2})
    assert read_only.value.errno == errno.EROFS and read_only.value.filename == str(path)
    again = JudgeCache(path)
    assert again.get("kept") == {"value": 1}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
