"""An implicit-factor study's measurements as one committed file.

A run folder (``runs/``) does not outlive the checkout it was made in, but a report folder is
committed. Each report therefore writes every per-prompt measurement it read, with the arm
each came from, to ``<report>-measurements.csv.gz`` beside it (``implicit-`` or ``removal-``,
since one folder may hold both reports); a later report accepts that file in place
of the runs, so new seeds pool with seeds trained in an earlier session and a committed table is
rebuilt without retraining.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

IMPLICIT_ARCHIVE = "implicit-measurements.csv.gz"
REMOVAL_ARCHIVE = "removal-measurements.csv.gz"
RECORD = ["teacher", "method", "seed", "prompt_id", "metric", "value"]
IMPLICIT_METRICS = ("transfer", "task_kl", "trait_mass", "shift", "base_fit")
ARM = ["removal", "source", "k", "weight", "scope"]
COLUMNS = ["run", "task", "n_eval_drift", *RECORD, *ARM]
TEXT = ["run", "task", "teacher", "method", "prompt_id", "metric", "removal", "source", "scope"]
ORDER = ["run", "method", "seed", "metric", "prompt_id"]  # one row order, from runs or archives


def records_frame(
    records: list[dict[str, Any]], targets: list[dict[str, Any]], teacher: str
) -> pd.DataFrame:
    """A run's scored records as (teacher, method, seed, prompt_id, metric, value) rows of the
    implicit metrics, unmeasured values left out."""
    meta = {t["target"]: t for t in targets}
    df = pd.DataFrame(records)
    df = df[df["value"].notna() & df["metric"].isin(IMPLICIT_METRICS)].copy()
    df["method"] = df["target"].map(lambda t: meta[t]["method"])
    df["seed"] = df["target"].map(lambda t: meta[t]["seed"])
    df["teacher"] = teacher
    return df[["teacher", "method", "seed", "prompt_id", "metric", "value"]]


def is_archive(path: Path) -> bool:
    """A measurements file (rather than a run folder)."""
    return Path(path).name.endswith(".csv.gz")


def write_archive(frame: pd.DataFrame, path: Path) -> Path:
    """``frame``'s archive columns, sorted, gzip with no timestamp: the same measurements give
    the same bytes, so a rebuilt report shows no spurious change."""
    from grasp_bench.core.store import atomic_write_bytes

    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: measurements lack column(s) {missing}")
    text = frame[COLUMNS].sort_values(ORDER, kind="stable").to_csv(index=False)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(text.encode())
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_archive(path: Path) -> pd.DataFrame:
    """An archive back, checked: a missing column or an unreadable value names the file, the
    line and the field."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such measurements file")
    try:
        frame = pd.read_csv(path, compression="gzip", keep_default_na=False, na_values=[""],
                            dtype={c: str for c in TEXT})  # "0017" stays a prompt id  # fmt: skip
    except (OSError, EOFError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable measurements file ({exc})") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: line 1: missing column(s) {missing}")
    for field in ("seed", "value", "n_eval_drift", "k"):
        numbers = pd.to_numeric(frame[field], errors="coerce")
        bad = numbers.isna() & frame[field].notna()
        if field == "seed":
            bad |= frame[field].isna()
        if bad.any():
            line = int(bad.idxmax()) + 2  # the header is line 1
            raise ValueError(f"{path}: line {line}: field {field!r}: {frame[field][bad.idxmax()]!r}"
                             " is not a number")  # fmt: skip
        frame[field] = numbers
    frame["seed"] = frame["seed"].astype(int)
    return frame


def run_measurements(run: Path, arm_of_target: Any) -> pd.DataFrame:
    """A run folder's records in archive form; ``arm_of_target(run, method, seed)`` gives the
    arm columns (read from the method card)."""
    from grasp_bench.core.rundir import RunDir
    from grasp_bench.core.store import read_jsonl

    rd = RunDir(Path(run))
    if not rd.results.exists():
        raise FileNotFoundError(f"{rd.results}: run {run} has no report yet (grasp-bench run)")
    meta = json.loads(rd.results.read_text())["meta"]
    experiment = meta["experiment"]
    frame = records_frame(read_jsonl(rd.scores), meta["targets"], experiment["task"])
    frame.insert(0, "run", Path(run).name)
    frame.insert(1, "task", experiment["task"])
    frame.insert(2, "n_eval_drift", (experiment.get("data") or {}).get("n_eval_drift"))
    arms = {(m, s): arm_of_target(Path(run), m, s) for m, s in
            frame[["method", "seed"]].drop_duplicates().itertuples(index=False)}  # fmt: skip
    for col in ARM:
        frame[col] = [arms[(m, s)].get(col) for m, s in zip(frame.method, frame.seed, strict=True)]
    return frame


def measurements(inputs: list[Path], arm_of_target: Any) -> pd.DataFrame:
    """Records of every input (run folders and archives, in any mix) in one row order, so a
    report reads the same from either; the same (run, method, seed) given twice is an error,
    so nothing is counted twice."""
    parts = [
        read_archive(p) if is_archive(p) else run_measurements(p, arm_of_target)
        for p in map(Path, inputs)
    ]
    if not parts:
        raise ValueError("no runs or measurements files given")
    frame = pd.concat(parts, ignore_index=True)
    owners: dict[tuple, Path] = {}
    for path, part in zip(map(Path, inputs), parts, strict=True):
        for key in part[["run", "method", "seed"]].drop_duplicates().itertuples(index=False):
            if tuple(key) in owners:
                raise ValueError(f"{path}: run {key[0]} method {key[1]} seed {key[2]} is also in"
                                 f" {owners[tuple(key)]}; give each training run once")  # fmt: skip
            owners[tuple(key)] = path
    return frame.sort_values(ORDER, kind="stable", ignore_index=True)
