"""The score stage: every completion graded by the judges (an LLM judge's canaries first);
and, for a task measured teacher-forced, the measure stage that replaces generate and score."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from grasp_bench.core.config import LoadedExperiment
from grasp_bench.core.hardware import describe as describe_machine
from grasp_bench.core.hardware import resolve_dtype
from grasp_bench.core.store import (
    Stage,
    atomic_write_json,
    atomic_write_jsonl,
    read_jsonl,
    stable_hash,
)
from grasp_bench.data.taskspec import MetricSpec, TaskSpec, rubrics_of
from grasp_bench.run.stages.base import (
    RunData,
    RunStage,
    RunState,
    Target,
    adapter_identity,
    console,
)


class ScoreStage(RunStage):
    """``score/scores.jsonl``: one record per completion and metric, from the judges the
    experiment configures (``judge-server.log`` beside it for a local judge server). Inputs:
    the generate stage's identity, the judge settings, the task and its metrics."""

    name = "score"
    covers = ("score",)

    def run(self, state: RunState) -> None:
        from grasp_bench.evaluate.scoring import metrics_for, open_judges, score_rows

        cfg, run = state.exp.config, state.run
        judge_cfg = cfg.judge.model_dump(exclude={"cache", "concurrency"})
        judge_cfg["dtype"] = resolve_dtype(cfg.judge.dtype)
        metrics = metrics_for(state.spec, cfg.judge)
        stage = Stage(
            run.root,
            run.score.name,
            {
                "generate": state.generate_hash,
                "judge": judge_cfg,
                "task": cfg.task,
                "metrics": [_metric_identity(m) for m in metrics],
            },
        )
        if not stage.is_done():
            stage.reset_if_stale()
            reference = {p["prompt_id"]: p.get("target") for p in state.data.eval_prompts}
            rows = [{**c, "reference": reference.get(c["prompt_id"])} for c in state.completions]
            with open_judges(
                cfg.judge,
                rubrics_of(metrics),
                cfg.judge_cache,
                server_log=run.judge_server_log,
                progress=state.progress,
            ) as judges:
                _check_canaries(cfg.judge, judges, stage.dir, cfg.judge_cache.parent)
                records = score_rows(rows, metrics, judges, progress=state.progress)
            atomic_write_jsonl(run.scores, records)
            stage.finish(n=len(records))
        state.records = read_jsonl(run.scores)


class MeasureStage(RunStage):
    """A teacher-forced task's metrics (``TaskSpec.evaluate``) in place of generate and score:
    ``score/<target>.jsonl`` and ``<target>.layers.jsonl`` per target, so a new seed or method
    measures only its own and a kill loses one target; ``scores.jsonl`` gathers them."""

    name = "score"
    covers = ("generate", "score")

    def run(self, state: RunState) -> None:
        state.records = measure_all(
            state.exp, state.spec, state.targets, state.data, state.progress
        )
        state.backends = {t.name: "hf-teacher-forced" for t in state.targets}


CANARIES = "canaries.json"


def _check_canaries(judge_cfg: Any, judges: dict[str, Any], out: Path, baseline_dir: Path) -> None:
    """Grade each LLM-judged rubric's canaries before the run's answers (judge/canary.py),
    against baselines kept in ``baseline_dir`` (the judge cache's folder); a drifted judge is a
    loud warning and a line in the report's meta."""
    if judge_cfg.kind == "offline":
        return
    from grasp_bench.evaluate.judge.canary import check
    from grasp_bench.evaluate.judge.rubric import load_rubric

    results = []
    for rubric in judge_cfg.rubrics:
        if rubric not in judges:
            continue
        scale = load_rubric(rubric).scale
        got = check(judges[rubric], rubric, baseline_dir, (scale.min, scale.max))
        if got is None:
            continue
        results.append({**got.to_json(), "line": got.line()})
        if got.status == "drifted":
            console.print(f"[bold red]JUDGE CHANGED[/] {got.line()}: its grades of these fixed"
                          " answers moved since its first run; its numbers are not comparable"
                          " with earlier runs'", highlight=False)  # fmt: skip
    if results:
        atomic_write_json(out / CANARIES, results)


def _metric_identity(metric: MetricSpec) -> dict[str, Any]:
    """A metric as the score stage's hash sees it; a field left at its empty default is left
    out, so adding one to MetricSpec does not re-score runs whose metrics did not change."""
    fields = dataclasses.asdict(metric)
    if not fields["outcomes"]:
        del fields["outcomes"]
    return fields


def measure_all(
    exp: LoadedExperiment, spec: TaskSpec, targets: list[Target], data: RunData, progress: bool
) -> list[dict[str, Any]]:
    """Score stage of a task measured teacher-forced (``TaskSpec.evaluate``): one records file
    per target, so a new seed or method measures only its own and a kill loses one target."""
    cfg, run = exp.config, data.run
    shared = {
        "model": data.model,
        "task": cfg.task,
        "prompts": stable_hash(data.eval_prompts),
        "evaluate": spec.evaluate_version,
    }
    adapters = {t.name: stable_hash(adapter_identity(t.adapter)) for t in targets}
    stage = Stage(run.root, run.score.name, {**shared, "targets": adapters})
    if not stage.is_done():
        # both files of a target are its output: a config that grows keeps them together
        keys = {}
        for n, a in adapters.items():
            key = stable_hash({**shared, "adapter": a})
            keys[run.measured(n).name] = keys[run.measured_layers(n).name] = key
        stage.reset_if_stale(keys=keys)
        measured: dict[str, str] = {}  # adapter identity -> a target measured with it
        seconds: dict[str, float] = {}  # measurement time of the targets measured now
        for i, t in enumerate(targets, 1):
            if run.measured(t.name).exists() and run.measured_layers(t.name).exists():
                measured.setdefault(adapters[t.name], t.name)
                continue
            twin = measured.get(adapters[t.name])
            if twin is not None and t.adapter is None and t.recipe.method.serving != "hf-hooks":
                # the base model at another seed: the same model, so the same measurement
                for path in (run.measured_layers(twin), run.measured(twin)):
                    rows = [{**r, "target": t.name} for r in read_jsonl(path)]
                    dest = run.measured(t.name) if path == run.measured(twin) else None
                    atomic_write_jsonl(dest or run.measured_layers(t.name), rows)
                continue
            if progress:
                console.print(f"measure {t.name} ({i}/{len(targets)})")
            measured.setdefault(adapters[t.name], t.name)
            started = time.perf_counter()
            records, layers = spec.evaluate(
                data.model,
                t.name,
                str(t.adapter) if t.adapter else None,
                t.recipe.method,
                data.eval_prompts,
                cfg.trust_remote_code,
            )
            seconds[t.name] = round(time.perf_counter() - started, 1)
            atomic_write_jsonl(run.measured_layers(t.name), layers)
            atomic_write_jsonl(run.measured(t.name), records)
        records = [r for t in targets for r in read_jsonl(run.measured(t.name))]
        atomic_write_jsonl(run.scores, records)
        stage.finish(
            n=len(records), targets=sorted(adapters), seconds=seconds, machine=describe_machine()
        )
    return read_jsonl(run.scores)
