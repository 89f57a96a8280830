"""The board's table before it is drawn: every validated submission's summary, its paired
differences against plain LoRA on the same model, the effect gate, and each judge's
calibration and prevalence-corrected drift where one exists."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from grasp_bench.core.prevalence import JudgeError, corrected_rate
from grasp_bench.core.stats import paired_difference
from grasp_bench.data.taskspec import MetricSpec, get_task
from grasp_bench.evaluate.effect_gate import effect_gate
from grasp_bench.evaluate.judge.base import judge_name
from grasp_bench.leaderboard.calibration import (
    NOT_CALIBRATED,
    CalibrationFile,
    find_calibration,
    find_metric_calibration,
    load_calibrations,
    rubrics_graded,
)
from grasp_bench.leaderboard.schema import SampleRecord, Summary
from grasp_bench.leaderboard.validate import submission_dirs

REFERENCE = "lora"
# columns of collect() that only the page uses (not written to the CSV or board.json)
_INTERNAL = ["drift_calibrations", "task_calibrations"]


def _samples(sub: Path) -> pd.DataFrame:
    rows = []
    for line in (sub / "samples.jsonl").read_text().splitlines():
        if line.strip():
            s = SampleRecord.model_validate_json(line)
            rows += [
                {
                    "prompt_id": s.prompt_id,
                    "seed": s.seed,
                    "split": s.split,
                    "metric": m,
                    "value": sc.value,
                    "judge": json.dumps(sc.judge, sort_keys=True),
                }
                for m, sc in s.scores.items()
            ]
    return pd.DataFrame(rows, columns=["prompt_id", "seed", "split", "metric", "value", "judge"])


def _calibrations(
    samples: pd.DataFrame, task: str, files: dict[str, CalibrationFile], role: str = "drift"
) -> tuple[tuple[str, str | None], ...]:
    """(text, calibration file) for each judge that made the drift (or task) number: its
    calibration on that metric's first rubric, or "not calibrated"."""
    spec = get_task(task)
    metric = spec.drift_metric if role == "drift" else spec.task_metric
    made = samples[(samples.metric == metric.name) & (samples.split == role)]
    identities = [json.loads(i) for i in sorted(set(made.judge))]
    out = []
    for identity in identities:
        rubric = metric.rubrics[0]
        graded = rubrics_graded(identity, rubric)
        cal = find_calibration(files, identity, rubric, task, metric.name, graded)
        text, path = (cal.summary(), cal.path) if cal else (NOT_CALIBRATED, None)
        if len(identities) > 1:  # a row whose drift several judges made names each
            text = f"{judge_name(identity)}: {text}"
        out.append((text, path))
    return tuple(out)


def collect(root: Path, calibrations: dict[str, CalibrationFile] | None = None) -> pd.DataFrame:
    """One row per submission, with paired differences against plain LoRA on the same prompts
    and the drift judge's calibration (from ``<root>/calibration/*.json`` unless given)."""
    root = Path(root)
    files = load_calibrations(root) if calibrations is None else calibrations
    rows, frames = [], {}
    for sub in submission_dirs(root):
        s = Summary.model_validate_json((sub / "summary.json").read_text())
        frames[(s.task, s.model, s.method)] = samples = _samples(sub)
        rel = sub.relative_to(root).as_posix()
        cals = _calibrations(samples, s.task, files)
        task_cals = _calibrations(samples, s.task, files, role="task")
        rows.append(
            {
                "task": s.task,
                "model": s.model,
                "method": s.method,
                "description": s.description,
                "drift": s.drift.mean,
                "drift_lo": s.drift.lo,
                "drift_hi": s.drift.hi,
                "task_score": s.task_score.mean,
                "task_lo": s.task_score.lo,
                "task_hi": s.task_score.hi,
                "n_drift": s.drift.n,
                "n_task": s.task_score.n,
                "coherence": s.coherence.mean if s.coherence else None,
                "unscored_share": s.unscored_share,
                "seeds": ",".join(map(str, s.seeds)),
                "n_seeds": len(s.seeds),
                "n": s.n_samples,
                "judges": "; ".join(s.judges),
                "drift_metric": s.drift_metric or get_task(s.task).drift_metric.name,
                "drift_judge": s.drift_judge or "",
                "drift_calibration": "; ".join(text for text, _ in cals),
                "drift_calibration_file": "; ".join(path or "" for _, path in cals),
                "drift_calibrations": cals,
                "judge_canaries": "; ".join(s.judge_canaries),
                "training_data": s.training_data,
                "task_metric": s.task_metric or get_task(s.task).task_metric.name,
                "task_judge": s.task_judge or "",
                "task_calibration": "; ".join(text for text, _ in task_cals),
                "task_calibration_file": "; ".join(path or "" for _, path in task_cals),
                "task_calibrations": task_cals,
                "backend": s.backend,
                "recipe": f"{rel}/recipe.yaml",
                "summary": f"{rel}/summary.json",
                "samples": f"{rel}/samples.jsonl",
                "method_card": f"{rel}/method_card.json"
                if (sub / "method_card.json").is_file()
                else "",
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for i, r in df.iterrows():
        ref = frames.get((r.task, r.model, REFERENCE))
        mine = frames[(r.task, r.model, r.method)]
        spec = get_task(r.task)
        if ref is None or r.method == REFERENCE:
            continue
        for name, metric, split in (
            ("drift", spec.drift_metric.name, "drift"),
            ("task", spec.task_metric.name, "task"),
        ):
            a = mine[(mine.metric == metric) & (mine.split == split)].dropna(subset=["value"])
            b = ref[(ref.metric == metric) & (ref.split == split)].dropna(subset=["value"])
            d = paired_difference(a, b)
            df.loc[i, f"{name}_vs_lora"] = round(d.mean, 6)
            df.loc[i, f"{name}_vs_lora_lo"] = round(d.lo, 6)
            df.loc[i, f"{name}_vs_lora_hi"] = round(d.hi, 6)
    lora = df[df.method == REFERENCE].set_index(["task", "model"])
    for i, r in df.iterrows():
        if (r.task, r.model) in lora.index:
            ref = lora.loc[(r.task, r.model)]
            df.loc[i, "drift_reduction"] = round(1 - r.drift / ref.drift, 6) if ref.drift else None
            df.loc[i, "task_kept"] = (
                round(r.task_score / ref.task_score, 6) if ref.task_score else None
            )
    df["drift_corrected"] = [
        _corrected_drift(frames[(r.task, r.model, r.method)], r.task, files)
        for r in df.itertuples()
    ]
    df["pareto"] = _pareto(df)
    for (task, model), idx in df.groupby(["task", "model"]).groups.items():
        gate = effect_gate(frames.get((task, model, "base")), frames.get((task, model, REFERENCE)),
                           get_task(task).drift_metric)  # fmt: skip
        for key, value in gate.items():
            df.loc[idx, f"gate_{key}"] = value
        if gate["verdict"] != "drifts":  # no effect to reduce: nothing is ranked or credited
            df.loc[idx, "pareto"] = False
            df.loc[idx, "drift_reduction"] = None
    # rows whose drift another judge measured are never ranked together: they sort apart
    return df.sort_values(
        ["task", "model", "drift_judge", "drift", "task_score", "method"],
        ascending=[True, True, True, True, False, True],
    ).reset_index(drop=True)


def _corrected_drift(samples: pd.DataFrame, task: str, files: dict[str, CalibrationFile]) -> str:
    """The drift rate corrected for its judge's error (Rogan-Gladen, ``prevalence.py``), from
    the judge's calibration of the drift metric; or why there is none."""
    metric = get_task(task).drift_metric
    made = samples[(samples.metric == metric.name) & (samples.split == "drift")].dropna(
        subset=["value"]
    )
    if not metric.is_rate or made.empty:
        return "n/a (not a rate)" if not metric.is_rate else "n/a"
    identities = sorted(set(made.judge))
    if len(identities) != 1:
        return "not correctable (several judges)"
    judge = json.loads(identities[0])
    graded = rubrics_graded(judge, metric.rubrics[0])
    found = find_metric_calibration(files, judge, metric.rubrics[0], metric.name, task, graded)
    if found is None:
        return f"not correctable (no calibration of this metric graded on {' + '.join(graded)})"
    _, entry = found
    stats = (entry.recall, entry.specificity, entry.reference_rate)
    if entry.n is None or any(x is None or x.mean is None for x in stats):
        return "not correctable (calibration lacks recall, specificity or rate: recalibrate)"
    error = JudgeError.from_rates(entry.n, entry.reference_rate.mean, entry.recall.mean,
                                  entry.specificity.mean)  # fmt: skip
    return corrected_rate(made.value.to_numpy(), made.prompt_id.to_numpy(), error).text()


def _sign(metric: MetricSpec) -> int:
    """+1 where higher is better, so that ``sign * value`` is larger when better."""
    return 1 if metric.higher_is_better else -1


def _pareto(df: pd.DataFrame) -> list[bool]:
    """On the front: no other row of the same task, model and drift judge is at least as good
    on drift and on task score, and strictly better in one (directions from the TaskSpec)."""
    out = []
    for _, r in df.iterrows():
        spec = get_task(r.task)
        sd, st = _sign(spec.drift_metric), _sign(spec.task_metric)
        # only rows whose drift the same judge measured are compared
        same = df[(df.task == r.task) & (df.model == r.model) & (df.drift_judge == r.drift_judge)]
        dominated = any(
            (sd * o.drift >= sd * r.drift and st * o.task_score >= st * r.task_score)
            and (sd * o.drift > sd * r.drift or st * o.task_score > st * r.task_score)
            for _, o in same.iterrows()
        )
        out.append(not dominated)
    return out
