"""The Ray executor against the local one on a tiny sweep of the real pipeline: the embedded
model on the toy task, lora and grasp at two seeds, greedy generation in float32 and the same
thread count in both, so the two results tables must be equal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grasp_bench.run.sweep import load_sweep, plan_sweep, publish, run_sweep

from ..conftest import REPO

pytestmark = pytest.mark.integration

TINY = """\
name: tiny-sweep
output_dir: {out}
tasks: [toy]
models: [default]
seeds: [0, 1]
methods: [lora, grasp]
judge: offline
data: {{n_train: 16, n_eval_task: 4, n_eval_drift: 4}}
# threads: a Ray task gets OMP_NUM_THREADS = its CPUs; the same count here keeps the sums equal
train: {{steps: 2, batch_size: 2, max_length: 64, checkpoint_every: 2, threads: 2}}
generation: {{max_tokens: 8, temperature: 0.0, dtype: float32, backend: hf}}
"""


def _sweep(tmp_path: Path, executor: str):
    folder = tmp_path / executor
    folder.mkdir()
    (folder / "baselines").symlink_to(REPO / "baselines")
    path = folder / "sweep.yaml"
    path.write_text(TINY.format(out=folder / "runs"))
    loaded = load_sweep(path)
    runs = plan_sweep(loaded)
    return loaded, runs, run_sweep(loaded, runs, executor)


def test_ray_and_local_executors_give_the_same_results(tmp_path):
    pytest.importorskip("ray")
    import pandas as pd

    _, local_runs, local = _sweep(tmp_path, "local")
    loaded, ray_runs, remote = _sweep(tmp_path, "ray")
    assert [r.id for r in local_runs] == [r.id for r in ray_runs]  # ids ignore output_dir
    for index in (local, remote):
        assert {e["status"] for e in index.entries.values()} == {"done"}, index.entries
    for a, b in zip(local.entries.values(), remote.entries.values(), strict=True):
        pd.testing.assert_frame_equal(
            pd.read_csv(Path(a["report"]).with_suffix(".csv")),
            pd.read_csv(Path(b["report"]).with_suffix(".csv")),
        )
    # a second sweep finds everything done and starts nothing (not even Ray)
    again = run_sweep(loaded, ray_runs, "ray")
    assert {e["status"] for e in again.entries.values()} == {"skipped"}
    assert publish(again, tmp_path / "board") == []
    board = json.loads((tmp_path / "board" / "board.json").read_text())
    assert {row["method"] for row in board} == {"lora", "grasp"}
