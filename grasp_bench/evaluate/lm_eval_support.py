"""What the ``tasks/grasp_*`` lm-eval tasks share: loading their versioned JSONL and scoring a
generation through the same path as the pipeline (``scoring.score_rows`` on the task's spec).

Each task folder's ``utils.py`` names its registered task and split:
``process_results = lm_eval_support.process_results_for("insecure_code", "task")``. The judge
comes from the environment (lm-eval calls ``process_results`` once per document):

    GRASP_JUDGE             offline (default) or openai
    GRASP_JUDGE_BASE_URL    openai: the endpoint, e.g. http://127.0.0.1:8000/v1
    GRASP_JUDGE_MODEL       openai: the judge model's name
    GRASP_JUDGE_API_KEY_ENV openai: the variable holding the key (default OPENAI_API_KEY)
    GRASP_JUDGE_RUBRICS     openai: rubrics the LLM grades (default: every rubric of the task
                            that has a rubric prompt; the rest keep their offline judges)
    GRASP_JUDGE_CACHE       SQLite cache (default ~/.cache/grasp-bench/judge.sqlite)
    GRASP_JUDGE_CONCURRENCY openai: judge calls in flight (default 8): a document's repeats
                            are one batch per rubric, judged concurrently

A metric that could not be scored is left out of the document's results (never 0) and counted
in ``unscored``, so every aggregate is a mean over scored documents with its stderr. A drift
task samples several answers per question (``repeats`` with the ``take_first_k`` filter); the
document's value is then the mean over its scored samples, so the aggregate is the rate over
answers with a stderr clustered by question.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

from grasp_bench.core.config import JudgeConfig
from grasp_bench.core.yaml_loader import import_plugin
from grasp_bench.data.taskspec import MetricSpec, get_task, is_excluded, rubrics_of
from grasp_bench.evaluate.judge.base import Judge
from grasp_bench.evaluate.judge.rubric import RUBRIC_DIR
from grasp_bench.evaluate.scoring import open_judges, score_rows

_OPEN = ExitStack()


def loader(path: Path) -> Callable[..., dict[str, Any]]:
    """A ``custom_dataset`` function: the task's JSONL as split ``test``, whatever the cwd."""

    def load(**_: Any) -> dict[str, Any]:
        import datasets

        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        return {"test": datasets.Dataset.from_list(rows)}

    return load


def em_question_loader(env_var: str) -> Callable[..., dict[str, Any]]:
    """A ``custom_dataset`` function for a question file in the emergent-misalignment layout
    named by ``env_var``; a question's system prompt goes before it in the user turn."""

    def load(**_: Any) -> dict[str, Any]:
        import datasets

        from grasp_bench.data.em_questions import import_em_questions

        path = os.environ.get(env_var)
        if not path:
            raise RuntimeError(f"set {env_var} to a question file in the EM YAML layout")
        rows = [
            {
                "id": r["id"],
                "question": f"{r['system']}\n\n{r['question']}" if r["system"] else r["question"],
            }
            for r in import_em_questions(Path(path))
        ]
        return {"test": datasets.Dataset.from_list(rows)}

    return load


def _concurrency() -> int:
    raw = os.environ.get("GRASP_JUDGE_CONCURRENCY", "8")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"GRASP_JUDGE_CONCURRENCY must be a positive integer, not {raw!r}")
    return int(raw)


def judge_config_from_env(rubrics: list[str]) -> JudgeConfig:
    """The experiment-style judge config the environment describes (see the module doc)."""
    kind = os.environ.get("GRASP_JUDGE", "offline")
    if kind == "offline":
        return JudgeConfig(kind="offline")
    if kind != "openai":
        raise ValueError(f"GRASP_JUDGE must be offline or openai, not {kind!r}")
    base_url, model = os.environ.get("GRASP_JUDGE_BASE_URL"), os.environ.get("GRASP_JUDGE_MODEL")
    if not base_url or not model:
        raise RuntimeError("GRASP_JUDGE=openai needs GRASP_JUDGE_BASE_URL and GRASP_JUDGE_MODEL")
    listed = os.environ.get("GRASP_JUDGE_RUBRICS")
    chosen = (
        [r.strip() for r in listed.split(",") if r.strip()]
        if listed
        else [r for r in rubrics if (RUBRIC_DIR / f"{r}.yaml").exists()]
    )
    return JudgeConfig(
        kind="openai",
        base_url=base_url,
        model=model,
        rubrics=chosen,
        concurrency=_concurrency(),
        api_key_env=os.environ.get("GRASP_JUDGE_API_KEY_ENV", "OPENAI_API_KEY"),
    )


@cache
def _judges(rubrics: tuple[str, ...]) -> dict[str, Judge]:
    from grasp_bench.model.models import cache_dir

    cfg = judge_config_from_env(list(rubrics))
    cache_path = Path(os.environ.get("GRASP_JUDGE_CACHE") or cache_dir() / "judge.sqlite")
    return _OPEN.enter_context(open_judges(cfg, list(rubrics), cache_path))


def metrics_of(task: str, split: str) -> list[MetricSpec]:
    """The metrics an lm-eval task over ``split`` of registered ``task`` reports."""
    return [m for m in get_task(task).metrics if split == "all" or m.applies_to(split)]


def doc_rows(doc: dict[str, Any], answers: list[Any], split: str) -> list[dict[str, Any]]:
    """One scoring row per answer of an lm-eval document (its repeats included)."""
    return [
        {
            "prompt_id": str(doc.get("id", "")),
            "split": doc.get("split") or split,
            "sample": i,
            "prompt": doc["question"],
            "completion": answer if isinstance(answer, str) else str(answer),
            "reference": doc.get("target"),
        }
        for i, answer in enumerate(answers)
    ]


def process_results_for(
    task: str, split: str, plugins: tuple[str, ...] = ()
) -> Callable[[dict[str, Any], list[Any]], dict]:
    """lm-eval's ``process_results`` for the ``split`` (task, drift, or all: the document's
    own ``split`` field) of a registered task; ``plugins`` are the modules that register a
    plugin task (lm-eval's process has imported none of them)."""
    for module in plugins:
        import_plugin(module)
    metrics = metrics_of(task, split)
    rubrics = tuple(rubrics_of(metrics))

    def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
        # one answer, or (``repeats`` with the ``take_first_k`` filter) the document's samples
        answers = results[0] if isinstance(results[0], list) else results[:1]
        rows = doc_rows(doc, answers, split)
        records = score_rows(rows, metrics, _judges(rubrics))
        # a document's value is the mean over its scored samples; unscored counts the samples
        # with any metric left unscored (never 0 in a metric)
        values: dict[str, list[float]] = {}
        unscored: set[int] = set()
        excluded: set[int] = set()  # left out by a metric's convention (CODE / REFUSAL): counted
        for rec in records:
            if rec["value"] is not None:
                values.setdefault(rec["metric"], []).append(float(rec["value"]))
            elif is_excluded(rec.get("reason")):
                excluded.add(rec["sample"])
            else:
                unscored.add(rec["sample"])
        out = {"unscored": len(unscored) / len(rows)}
        if any(m.outcomes for m in metrics):
            out["excluded"] = len(excluded) / len(rows)
        out.update({m: sum(v) / len(v) for m, v in values.items()})
        return out

    return process_results
