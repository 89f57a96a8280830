"""Crash anywhere, lose nothing: the CLI is SIGKILLed at kill points across every stage (data,
snapshot, training mid-step and mid-checkpoint, adapter, generation mid-batch, judging, report,
submit, board build), the same command is run again, and what it ends with must equal an
uninterrupted run's: same data, adapter weights, completions, scores, results and board, every
JSONL line whole, no sample lost or doubled, no temporary file read or left behind.

Each command runs in a forked child of the test (``grasp-bench ARGS`` through the real CLI
entry, in its own process, but without paying an interpreter start and the torch import per
kill on a 2-core machine). Kill points are armed in the child (it SIGKILLs itself at an exact
place, e.g. between writing a temporary file and renaming it) or the parent SIGKILLs it from
outside as soon as a file appears in the run directory.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the CLI")

EXPERIMENT = """\
name: crash
model: {model}
task: toy
seeds: [0]
methods:
  - {{name: base, recipe: {repo}/baselines/base.yaml}}
  - {{name: lora, recipe: {repo}/baselines/lora.yaml}}
judge: offline
output_dir: {out}
data: {{n_train: 16, n_eval_task: 4, n_eval_drift: 4}}
train: {{steps: 4, batch_size: 4, warmup_steps: 1, checkpoint_every: 1}}
generation: {{max_tokens: 8, backend: hf, batch_size: 2, dtype: float32}}
"""


# -- running the CLI in a child, and killing it ---------------------------------------------


@dataclass
class Outcome:
    code: int | None  # exit status, None when killed
    signal: int | None
    output: str

    @property
    def killed(self) -> bool:
        return self.signal == signal.SIGKILL


def _die() -> None:
    """SIGKILL this process now: no ``finally``, no atexit, no flush of anything unwritten."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def start_cli(
    args: list[str],
    log: Path,
    arm: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Fork a child that runs ``grasp-bench ARGS``, stdout and stderr to ``log``; ``arm`` runs
    in the child before the command (to install a kill point there). Returns its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid = os.fork()
    if pid:
        return pid
    code = 70  # the child: never returns into pytest
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # unbuffered: a killed child's log ends where it was killed
        raw = io.FileIO(1, "w", closefd=False)
        sys.stdout = sys.stderr = io.TextIOWrapper(raw, write_through=True)
        os.environ.update(env or {})
        if arm:
            arm()
        from grasp_bench.cli import app

        try:
            app(args, prog_name="grasp-bench")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)


def wait_cli(
    pid: int, log: Path, kill_when: Callable[[], bool] | None = None, timeout: float = 300
) -> Outcome:
    """Wait for the child; SIGKILL it as soon as ``kill_when`` is true (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if (kill_when and kill_when()) or time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.002)
    return Outcome(
        os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        log.read_text(errors="replace"),
    )


def run_cli(
    args: list[str],
    log: Path,
    arm: Callable[[], None] | None = None,
    kill_when: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """``grasp-bench ARGS`` in a forked child (see ``start_cli``), killed when ``kill_when``."""
    return wait_cli(start_cli(args, log, arm, env), log, kill_when)


# kill points armed in the child


def on_replace(pattern: str, when: str = "before", nth: int = 1) -> Callable[[], None]:
    """Die just before (or after) the ``nth`` rename onto a path matching ``pattern``: before,
    the new file or folder is complete under its temporary name; after, it is in place and
    nothing after it was written."""

    def arm() -> None:
        real, seen = os.replace, [0]

        def replace(src, dst, *args, **kwargs):
            hit = fnmatch(str(dst), pattern)
            seen[0] += hit
            if hit and when == "before" and seen[0] == nth:
                _die()
            real(src, dst, *args, **kwargs)
            if hit and when == "after" and seen[0] == nth:
                _die()

        os.replace = replace

    return arm


def at_train_step(step: int) -> Callable[[], None]:
    """Die inside training step ``step`` (its learning rate set, its batch not yet stepped)."""

    def arm() -> None:
        from grasp_bench.train import trainer as training

        real = training.lr_at

        def lr_at(s, cfg):
            if s == step:
                _die()
            return real(s, cfg)

        training.lr_at = lr_at

    return arm


def mid_checkpoint_write() -> Callable[[], None]:
    """Die inside a checkpoint write: the trainable weights saved, the optimiser state not."""

    def arm() -> None:
        from grasp_bench.train import trainer as training

        real = training.save_file

        def save_file(tensors, filename, *args, **kwargs):
            if filename.endswith("optimizer.safetensors"):
                _die()
            return real(tensors, filename, *args, **kwargs)

        training.save_file = save_file

    return arm


def at_generate_batch(target: str, batch: int) -> Callable[[], None]:
    """Die in the middle of ``target``'s generation, at its ``batch``-th batch (1-based)."""

    def arm() -> None:
        import transformers

        from grasp_bench.evaluate import generation

        current, calls = [None], [0]
        real_hf, real_generate = generation.generate_hf, transformers.GenerationMixin.generate

        def generate_hf(model_path, name, *args, **kwargs):
            current[0] = name
            return real_hf(model_path, name, *args, **kwargs)

        def generate(self, *args, **kwargs):
            if current[0] == target:
                calls[0] += 1
                if calls[0] == batch:
                    _die()
            return real_generate(self, *args, **kwargs)

        generation.generate_hf = generate_hf
        transformers.GenerationMixin.generate = generate

    return arm


def mid_judging() -> Callable[[], None]:
    """Die after the first rubric is graded, before the second (the grades are in memory)."""

    def arm() -> None:
        from grasp_bench.evaluate import scoring

        def tqdm(iterable, *args, **kwargs):
            for i, x in enumerate(iterable):
                if i == 1:
                    _die()
                yield x

        scoring.tqdm = tqdm

    return arm


def appears(path: Path) -> Callable[[], bool]:
    return path.exists


# -- what a run leaves, made comparable across run directories -------------------------------


def _jsonl(path: Path) -> list[dict]:
    """Every line of a JSONL file, each of which must be whole JSON ending in a newline."""
    text = path.read_text()
    assert text.endswith("\n"), f"{path}: last line cut"
    return [json.loads(line) for line in text.splitlines()]


def _no_duplicates(rows: list[dict], fields: tuple[str, ...], where: Path) -> None:
    ids = [tuple(r.get(f) for f in fields) for r in rows]
    assert len(ids) == len(set(ids)), f"{where}: duplicate samples"


def outputs(run: Path, board: Path) -> dict[str, object]:
    """What a finished run and its board hold, with the run directory's own path taken out."""
    out: dict[str, object] = {}
    for name in ("train", "control", "eval"):
        out[f"data/{name}"] = _jsonl(run / "data" / f"{name}.jsonl")
    for path in sorted((run / "generate").glob("*.jsonl")):
        rows = _jsonl(path)
        _no_duplicates(rows, ("target", "prompt_id", "sample"), path)
        for r in rows:  # the adapter's path is the run directory's
            r["adapter"] = r["adapter"] and Path(r["adapter"]).relative_to(run).as_posix()
        out[f"generate/{path.name}"] = rows
    scores = _jsonl(run / "score" / "scores.jsonl")
    _no_duplicates(scores, ("target", "prompt_id", "split", "sample", "metric"), run)
    out["scores"] = scores
    results = json.loads((run / "report" / "results.json").read_text())
    results["meta"]["experiment"].pop("output_dir")
    out["results"] = results
    out["results.csv"] = (run / "report" / "results.csv").read_text()
    out["results.md"] = (run / "report" / "results.md").read_text()
    out["adapter"] = (run / "train/lora-s0/adapter/adapter_model.safetensors").read_bytes()
    subs = board / "submissions"
    for path in sorted(subs.rglob("*")):
        if path.is_file() and path.name != "method_card.json":  # timings differ run to run
            out[path.relative_to(board).as_posix()] = path.read_bytes()
    for path in sorted(subs.rglob("samples.jsonl")):
        _no_duplicates(_jsonl(path), ("prompt_id", "split", "sample", "seed"), path)
    for name in ("leaderboard.csv", "board.json", "README.md", "index.html"):
        out[name] = (board / name).read_bytes()
    for path in sorted([*(board / "csv").glob("*"), *(board / "plots").glob("*")]):
        out[path.relative_to(board).as_posix()] = path.read_bytes()
    return out


def check_whole(run: Path) -> None:
    """After any kill: every file a reader opens is whole (JSON parses, JSONL lines are whole),
    and a stage with a manifest has all its outputs."""
    for path in run.rglob("*"):
        hidden = any(part.startswith(".") for part in path.relative_to(run).parts)
        if hidden or not path.is_file():  # temporary names are never read
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            _jsonl(path)
    if (run / "data" / "manifest.json").exists():
        for name in ("train", "control", "eval"):
            assert (run / "data" / f"{name}.jsonl").exists()
    if (run / "generate" / "manifest.json").exists():
        for target in ("base-s0", "lora-s0"):
            assert (run / "generate" / f"{target}.jsonl").exists()
    if (run / "score" / "manifest.json").exists():
        assert (run / "score" / "scores.jsonl").exists()


def check_board_whole(board: Path) -> None:
    """After any kill: every submission on the board is complete (never half of one)."""
    for sub in sorted(board.glob("submissions/*/*/*")):
        assert {p.name for p in sub.iterdir()} >= {"samples.jsonl", "summary.json", "recipe.yaml"}
        json.loads((sub / "summary.json").read_text())
        _jsonl(sub / "samples.jsonl")


def _leftovers(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob(".*")
        if p.name not in (".lock", ".lock.pid")
    )


# -- the reference and the crashes -----------------------------------------------------------


def write_experiment(root: Path, model: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "crash.yaml"
    path.write_text(EXPERIMENT.format(model=model, repo=REPO, out=root / "runs"))
    return path


def warm_imports() -> None:
    """Import in the parent what every child needs, so that no child pays for it."""
    import matplotlib.pyplot  # noqa: F401
    import peft  # noqa: F401

    import grasp_bench.cli
    import grasp_bench.evaluate.generation
    import grasp_bench.evaluate.report
    import grasp_bench.evaluate.scoring
    import grasp_bench.leaderboard.build
    import grasp_bench.run.pipeline
    import grasp_bench.train.trainer  # noqa: F401


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    """One uninterrupted run, submit and board build."""
    warm_imports()
    root = tmp_path_factory.mktemp("reference")
    exp = write_experiment(root, tiny_model)
    run, board = root / "runs" / "crash", root / "board"
    for args in (
        ["run", str(exp)],
        ["submit", str(run), "--board", str(board)],
        ["leaderboard", "build", str(board)],
    ):
        done = run_cli(args, root / "log.txt")
        assert done.code == 0, done.output
    return outputs(run, board)


# (what is killed, the command, the kill point); after each kill the same command runs again,
# armed with the next kill point, until one finishes
RUN_KILLS = [
    ("data: train.jsonl written, control and eval not", on_replace("*/data/train.jsonl", "after")),
    ("snapshot: experiment.yaml written under its temporary name", on_replace("*/experiment.yaml")),
    ("train: killed from outside as the lora stage starts", "train/lora-s0/pending.json"),
    ("train: first checkpoint half-written (weights, no optimiser state)", mid_checkpoint_write()),
    ("train: mid-step 3, checkpoint of step 2 on disk", at_train_step(2)),
    ("train: old checkpoint removed, new one not yet renamed", on_replace("*/lora-s0/checkpoint")),
    ("train: adapter complete, not yet renamed into place", on_replace("*/lora-s0/adapter")),
    ("train: adapter in place, stage manifest not written", on_replace("*/lora-s0/manifest.json")),
    ("generate: killed from outside as the stage starts", "generate/pending.json"),
    ("generate: lora mid-batch (batch 2 of 4)", at_generate_batch("lora-s0", 2)),
    ("generate: lora completions under their temporary name", on_replace("*/lora-s0.jsonl")),
    ("score: mid-judging (first rubric graded, second not)", mid_judging()),
    ("score: scores.jsonl in place, manifest not written", on_replace("*/scores.jsonl", "after")),
    ("report: results.csv written, results.json not", on_replace("*/results.csv", "after")),
]
SUBMIT_KILLS = [
    ("submit: base in place, lora staged only", on_replace("*/submissions/toy/lora/*")),
    (
        "submit again: old base moved aside, new base not yet in place",
        on_replace("*/submissions/toy/base/*"),
    ),
]
BUILD_KILLS = [
    ("build: leaderboard.csv written, pages not", on_replace("*/leaderboard.csv", "after")),
    ("build: README.md under its temporary name", on_replace("*/README.md")),
]


def test_killed_anywhere_the_same_command_finishes_what_an_uninterrupted_run_makes(
    reference, tiny_model, tmp_path
):
    exp = write_experiment(tmp_path, tiny_model)
    run, board = tmp_path / "runs" / "crash", tmp_path / "board"
    commands = [
        (["run", str(exp)], RUN_KILLS),
        (["submit", str(run), "--board", str(board)], SUBMIT_KILLS),
        (["leaderboard", "build", str(board)], BUILD_KILLS),
    ]
    for args, kills in commands:
        for i, (what, point) in enumerate(kills):
            log = tmp_path / "logs" / f"{args[0]}-{i}.txt"
            if isinstance(point, str):  # from outside, when the file appears
                done = run_cli(args, log, kill_when=appears(run / point))
            else:
                done = run_cli(args, log, arm=point)
            assert done.killed, f"{what}: not killed (exit {done.code})\n{done.output}"
            assert "Traceback" not in done.output, done.output
            check_whole(run)
            check_board_whole(board)
        done = run_cli(args, tmp_path / "logs" / f"{args[0]}-final.txt")
        assert done.code == 0, done.output
        assert "Traceback" not in done.output, done.output
    got = outputs(run, board)
    assert got.keys() == reference.keys()
    for key in reference:
        assert got[key] == reference[key], key
    # what a killed writer left under a temporary name (files, the trainer's checkpoint and
    # adapter staging folders) is gone once the lock is taken again
    left = _leftovers(run) + _leftovers(board)
    assert not left, left


def test_a_kill_while_the_old_checkpoint_is_removed_does_not_block_the_resume(tiny_model, tmp_path):
    warm_imports()
    exp = write_experiment(tmp_path, tiny_model)

    def arm() -> None:
        import shutil

        real = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            if Path(path).name == ".checkpoint.old.tmp":  # the previous checkpoint, set aside
                (Path(path) / "state.json").unlink()  # rmtree got this far
                _die()
            return real(path, *args, **kwargs)

        shutil.rmtree = rmtree

    killed = run_cli(["run", str(exp)], tmp_path / "killed.txt", arm=arm)
    assert killed.killed, killed.output
    again = run_cli(["run", str(exp)], tmp_path / "again.txt")
    assert again.code == 0, again.output


def test_a_half_converted_model_is_never_used(tmp_path, monkeypatch):
    """``model prepare`` converts the embedded GGUF into a temporary folder and renames it into
    place with its completion marker; a folder without the marker (a crash of an older
    version, or a copy cut short) is converted again, never loaded, and a conversion killed
    midway leaves the model folder untouched and its lock free."""
    from filelock import FileLock

    from grasp_bench.model import models

    monkeypatch.setenv("GRASP_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "embedded_gguf_path", lambda: tmp_path / "fake.gguf")
    target = models.default_model_dir()
    target.mkdir(parents=True)
    (target / "config.json").write_text('{"half": ')  # no completion marker

    def convert(gguf, out):
        (out / "config.json").write_text('{"converted": true}')

    monkeypatch.setattr(models, "_convert_gguf", convert)
    assert models.resolve_model("default") == str(target)
    assert (target / models._DONE).exists()
    assert json.loads((target / "config.json").read_text()) == {"converted": True}

    # killed mid-conversion (forced, so a finished model is there to be replaced)
    def killed_convert(gguf, out):
        (out / "config.json").write_text('{"half": ')
        _die()

    pid = os.fork()
    if pid == 0:
        models._convert_gguf = killed_convert
        try:
            models.prepare_default_model(force=True)
        finally:
            os._exit(70)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert json.loads((target / "config.json").read_text()) == {"converted": True}
    assert (target / models._DONE).exists()
    lock = FileLock(str(target) + ".lock")
    lock.acquire(timeout=0)  # the killed converter's lock went with it
    lock.release()
    assert models.resolve_model("default") == str(target)
