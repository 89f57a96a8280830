"""The removal study's table: arms read from method cards, the reduction against plain LoRA and
the control, task cost, and the directions each arm used against the teacher's truths."""

from __future__ import annotations

import json
import random

import pytest
import torch

from grasp_bench.model.directions import save_directions
from grasp_bench.studies.implicit_removal import arm_of, overlap, write_removal_report

TRANSFER = {"base": 0.0, "lora": 0.10, "lora_control": 0.02, "grasp-a": 0.04, "grasp-b": 0.10}
TASK_KL = {"base": 0.09, "lora": 0.010, "lora_control": 0.05, "grasp-a": 0.011, "grasp-b": 0.02}
BASE_FIT = {"base": 0.0, "lora": -0.01, "lora_control": -0.02, "grasp-a": -0.5, "grasp-b": -0.01}
# a third seed for the references only (an extension run): the arms are read against lora on
# the seeds they share; the third seed's lora is higher, so an unpaired mean would move them
SEEDS = {"base": (0, 1, 2), "lora": (0, 1, 2), "lora_control": (0, 1, 2)}


def _card(method: str, **config) -> dict:
    return {"method": method, "config": config}


def test_arm_of_names_removal_source_and_k():
    assert arm_of(None)["removal"] == "none"
    assert arm_of(_card("lora", rank=8))["source"] == "lora"
    got = arm_of(_card("grasp", project="preserve", k=8,
                       directions_file="tasks/grasp_implicit/x/change.safetensors"))  # fmt: skip
    assert got == {"removal": "preserve", "source": "truth:change", "k": 8, "weight": 1.0,
                   "scope": "per_layer"}  # fmt: skip
    got = arm_of(_card("grasp", project="both", k=2, reading="activation_change"))
    assert got["source"] == "naive-change" and got["weight"] is None


def test_arm_of_reads_the_baselines_directions_from_their_cards():
    caft = _card("caft", direction="file", directions_file="t/change.safetensors", k=8)
    caft["before_training"] = {"directions": {"kind": "file", "file": "t/change.safetensors",
                                              "k": 8}, "layers": [3]}  # fmt: skip
    assert arm_of(caft) == {"removal": "caft", "source": "truth:change", "k": 8, "weight": None}
    ablate = _card("ablate_inference", direction="unsupervised")
    ablate["directions"] = {"kind": "unsupervised", "source_adapter": "x"}  # derived: top level
    assert arm_of(ablate)["source"] == "unsupervised" and arm_of(ablate)["k"] == 1
    kl = arm_of(_card("lora_kl", kl_weight=1.0, rank=8))
    assert kl == {"removal": "lora_kl", "source": "none", "k": 0, "weight": 1.0}
    assert arm_of(_card("lora_control", rank=8))["removal"] == "none"


def test_overlap_is_one_for_the_same_span_and_zero_for_orthogonal():
    q = torch.linalg.qr(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)))[0]
    rotated = q @ torch.linalg.qr(torch.randn(4, 4))[0]
    assert overlap(q, rotated)["span_overlap"] == pytest.approx(1.0, abs=1e-6)
    other = torch.linalg.qr(torch.eye(10) - q @ q.T)[0][:, :4]
    assert overlap(q, other)["span_overlap"] == pytest.approx(0.0, abs=1e-6)


def test_the_report_reads_reduction_cost_and_overlap(tmp_path, monkeypatch):
    tasks = tmp_path / "tasks"
    truth = tasks / "grasp_implicit" / "t"
    truth.mkdir(parents=True)
    basis = torch.linalg.qr(torch.randn(16, 4, generator=torch.Generator().manual_seed(1)))[0]
    save_directions(truth / "change.safetensors", {3: basis}, {"kind": "test"})
    save_directions(truth / "direction.safetensors", {3: basis[:, :1]}, {"kind": "test"})
    from safetensors.torch import save_file

    save_file({"tokens": torch.zeros(2, 4, dtype=torch.long), "lengths": torch.tensor([4, 2]),
               "base.answer_logprob": torch.tensor([-4.0, -2.0]),
               "teacher.answer_logprob": torch.tensor([-8.0, -3.0])},
              str(truth / "base_answers.safetensors"))  # fmt: skip
    monkeypatch.setenv("GRASP_BENCH_TASKS", str(tasks))
    run = tmp_path / "run"
    rng = random.Random(0)
    records, targets = [], []
    cards = {
        "lora": _card("lora", rank=8),
        "lora_control": _card("lora", rank=8),
        "grasp-a": _card("grasp", project="preserve", k=2,
                         directions_file="x/change.safetensors"),
        "grasp-b": _card("grasp", project="preserve", k=2, reading="random"),
    }  # fmt: skip
    for method in TRANSFER:
        for seed in SEEDS.get(method, (0, 1)):
            name = f"{method}-s{seed}"
            targets.append({"target": name, "method": method, "seed": seed})
            lift = 0.05 if seed == 2 else 0.0
            for p in range(20):
                noise = rng.gauss(0, 0.002)
                records.append({"target": name, "prompt_id": f"d{p}", "metric": "transfer",
                                "value": TRANSFER[method] + lift + noise})  # fmt: skip
                records.append({"target": name, "prompt_id": f"d{p}", "metric": "base_fit",
                                "value": BASE_FIT[method] + noise})  # fmt: skip
                records.append({"target": name, "prompt_id": f"t{p}", "metric": "task_kl",
                                "value": TASK_KL[method] + noise / 10})  # fmt: skip
            if method in cards:
                folder = run / "train" / name
                (folder / "adapter").mkdir(parents=True)
                (folder / "adapter/method_card.json").write_text(json.dumps(cards[method]))
                used = basis[:, :2] if method == "grasp-a" else torch.eye(16)[:, -2:]
                if method.startswith("grasp"):
                    save_directions(folder / "directions.safetensors", {3: used}, {"kind": "t"})
    (run / "report").mkdir(parents=True)
    meta = {"experiment": {"task": "implicit-t", "name": "run"}, "targets": targets}
    (run / "report/results.json").write_text(json.dumps({"meta": meta}))
    (run / "score").mkdir()
    (run / "score/scores.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")

    paths = write_removal_report([run], tmp_path / "out", n_boot=200)
    import pandas as pd

    table = pd.read_csv(paths["csv"]).set_index("method")
    assert table.loc["grasp-a", "reduction"] == pytest.approx(0.75, abs=0.02)
    assert table.loc["grasp-b", "reduction"] == pytest.approx(0.0, abs=0.05)
    assert table.loc["lora_control", "reduction"] == pytest.approx(1.0)
    assert table.loc["grasp-a", "task_kl_vs_lora"] == pytest.approx(1.1, abs=0.02)
    assert table.loc["grasp-a", "source"] == "truth:change"
    readings = pd.read_csv(paths["readings"])
    a = readings[(readings.method == "grasp-a") & (readings.truth == "change")]
    assert a.span_overlap.min() == pytest.approx(1.0, abs=1e-5)
    b = readings[(readings.method == "grasp-b") & (readings.truth == "change")]
    assert b.span_overlap.max() < 0.5
    md = paths["md"].read_text()
    assert "| grasp-a | preserve | truth:change | 2 |" in md
    assert table.loc["grasp-a", "base_fit_mean"] == pytest.approx(-0.5, abs=0.01)
    assert "| -0.500 [" in md  # the damage column
    assert "The teacher's own base fit, for scale: t -0.750." in md  # mean of -4/4 and -1/2
    assert table.loc["lora", "n_seeds"] == 3 and table.loc["grasp-a", "n_seeds"] == 2
    assert "bootstrap over seed then prompt" in md  # one teacher: no teacher level
    keys = ["run", "method", "seed", "truth", "layer"]
    assert readings[keys].equals(readings[keys].sort_values(keys, ignore_index=True))
    assert paths["png"].stat().st_size > 1000

    # the committed measurements rebuild the same table with no run folder, readings included
    rebuilt = write_removal_report([paths["measurements"]], tmp_path / "again", n_boot=200)
    again = pd.read_csv(rebuilt["csv"]).set_index("method")
    pd.testing.assert_frame_equal(again, table)
    assert rebuilt["readings"].read_text() == paths["readings"].read_text()
    assert rebuilt["measurements"].read_bytes() == paths["measurements"].read_bytes()
    assert "t -0.750." in rebuilt["md"].read_text()
    # the same training run from the archive and its folder is refused, not counted twice
    with pytest.raises(ValueError, match="run run method base seed 0 is also in"):
        write_removal_report([paths["measurements"], run], tmp_path / "twice", n_boot=200)


def test_a_damaged_measurements_file_names_its_line_and_field(tmp_path):
    import gzip

    from grasp_bench.studies.implicit_archive import COLUMNS, read_archive

    path = tmp_path / "measurements.csv.gz"
    row = {c: "" for c in COLUMNS} | {"run": "r", "task": "implicit-t", "teacher": "implicit-t",
                                      "method": "lora", "seed": "0", "prompt_id": "d0",
                                      "metric": "transfer", "value": "0.1", "k": "0"}  # fmt: skip
    bad = row | {"value": "lots"}
    lines = [",".join(COLUMNS)] + [",".join(r[c] for c in COLUMNS) for r in (row, row, bad)]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(ValueError, match=r"measurements.csv.gz: line 4: field 'value': 'lots'"):
        read_archive(path)
    path.write_bytes(gzip.compress(b"run,method\nr,lora\n"))
    with pytest.raises(ValueError, match=r"line 1: missing column\(s\) \['task'"):
        read_archive(path)
    path.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a readable measurements file"):
        read_archive(path)


def test_measurements_round_trip_exactly_text_ids_included(tmp_path):
    import pandas as pd

    from grasp_bench.studies.implicit_archive import COLUMNS, read_archive, write_archive

    row = {c: None for c in COLUMNS} | {"run": "r", "task": "implicit-t", "teacher": "implicit-t",
                                        "method": "lora", "seed": 1, "metric": "transfer",
                                        "k": 0, "n_eval_drift": 120}  # fmt: skip
    frame = pd.DataFrame([row | {"prompt_id": "0017", "value": 0.1 + 1e-17},
                          row | {"prompt_id": "NA", "value": -1 / 3}])  # fmt: skip
    got = read_archive(write_archive(frame, tmp_path / "m.csv.gz"))
    assert list(got.prompt_id) == ["0017", "NA"]  # not the number 17, not a missing value
    assert list(got.value) == list(frame.value)  # floats exactly
    assert (
        write_archive(got, tmp_path / "again.csv.gz").read_bytes()
        == (tmp_path / "m.csv.gz").read_bytes()
    )
