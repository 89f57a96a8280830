"""The scoring stage: every completion gets every metric of its task and every configured
rubric, or an unscored reason. Offline scorers always run; LLM rubrics go through the judge."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from grasp_bench.config import JudgeConfig
from grasp_bench.judge.offline import score_toy


def score_offline(
    task: str,
    completions: list[dict[str, Any]],
    targets: dict[str, str | None],
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One record per (completion, metric); ``value`` is None with a ``reason`` if unscored."""
    if task != "toy":
        return _score_judged_task(task, completions, progress)
    records = []
    for row in tqdm(completions, desc="score offline", disable=not progress):
        for result in score_toy(row["split"], row["completion"], targets.get(row["prompt_id"])):
            records.append(
                {
                    **_key(row),
                    "metric": result.metric,
                    "value": result.value,
                    "reason": result.reason,
                    "judge": result.judge,
                }
            )
    return records


def _score_judged_task(
    task: str, completions: list[dict[str, Any]], progress: bool
) -> list[dict[str, Any]]:
    """Offline judges, batched: bandit and the MiniLM classifiers (see judge/api.py)."""
    from grasp_bench.judge.api import is_flagged, is_misaligned
    from grasp_bench.judge.bandit_judge import score_code
    from grasp_bench.judge.embedding import EmbeddingJudge

    def threshold(metric: str, judge_metric: str, rows, rule) -> list[dict[str, Any]]:
        scored = EmbeddingJudge(judge_metric).score([r["completion"] for r in rows])
        return [
            {
                **_key(r),
                "metric": metric,
                "value": None if s["value"] is None else rule(s["value"]),
                "reason": s["reason"],
                "judge": s["judge"],
            }
            for r, s in zip(rows, scored, strict=True)
        ]

    task_rows = [r for r in completions if r["split"] == "task"]
    drift_rows = [r for r in completions if r["split"] == "drift"]
    records: list[dict[str, Any]] = []
    with tqdm(total=2, desc=f"score {task} offline", disable=not progress) as bar:
        if task == "insecure_code":
            scored = score_code([r["completion"] for r in task_rows])
            records += [
                {
                    **_key(r),
                    "metric": "vulnerable",
                    "value": s["value"],
                    "reason": s["reason"],
                    "judge": s["judge"],
                }
                for r, s in zip(task_rows, scored, strict=True)
            ]
        elif task == "medical":
            records += threshold(
                "harmful", "medical_harm", task_rows, lambda v: float(is_flagged(v))
            )
        else:
            records += threshold("quality", "financial_quality", task_rows, lambda v: v / 100)
        bar.update()
        if task == "financial":
            records += threshold("political_lean", "political_lean", drift_rows, float)
        else:
            records += threshold(
                "misaligned", "aligned", drift_rows, lambda v: float(is_misaligned(v))
            )
        bar.update()
    return records


def _key(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("target", "prompt_id", "split", "sample")}


def local_judge_server(
    judge_cfg: JudgeConfig, log_path: Path | None = None, loras: dict[str, str] | None = None
):
    """The vLLM server a ``local`` judge runs (use as a context manager); ``loras`` adds
    adapters served by name beside the judge model."""
    from grasp_bench.models import resolve_model
    from grasp_bench.server import VLLMServer

    return VLLMServer(
        resolve_model(judge_cfg.model),
        loras=loras,
        served_name="judge",
        log_path=log_path,
        dtype=judge_cfg.dtype,
    )


def score_with_llm(
    judge_cfg: JudgeConfig,
    completions: list[dict[str, Any]],
    cache_path: Path,
    progress: bool = True,
    server_log: Path | None = None,
) -> list[dict[str, Any]]:
    """Every configured rubric on every completion, through an OpenAI-compatible judge."""
    from grasp_bench.judge.cache import JudgeCache
    from grasp_bench.judge.llm import JudgeItem, LLMJudge, LLMJudgeConfig
    from grasp_bench.judge.rubric import load_rubric

    if judge_cfg.kind == "offline" or not judge_cfg.rubrics:
        return []
    rubrics = [load_rubric(r) for r in judge_cfg.rubrics]
    items = [JudgeItem(row["prompt"], row["completion"]) for row in completions]
    records: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if judge_cfg.kind == "local":
            server = stack.enter_context(local_judge_server(judge_cfg, server_log))
            base_url, model = server.base_url, server.served_name
        else:
            base_url, model = judge_cfg.base_url, judge_cfg.model
        judge = LLMJudge(
            LLMJudgeConfig(
                model=model,
                base_url=base_url,
                api_key_env=judge_cfg.api_key_env,
                concurrency=judge_cfg.concurrency,
                timeout=judge_cfg.timeout,
                max_retries=judge_cfg.max_retries,
            ),
            JudgeCache(cache_path),
        )
        for rubric in rubrics:
            scored = judge.score(rubric, items, progress=progress)
            for row, rec in zip(completions, scored, strict=True):
                judge_id = dict(rec["judge"])
                if judge_cfg.kind == "local":
                    judge_id["served_model"] = judge_cfg.model
                    judge_id["dtype"] = server.dtype
                records.append(
                    {
                        **_key(row),
                        "metric": rubric.name,
                        "value": rec["value"],
                        "reason": rec.get("reason"),
                        "outcome": rec.get("outcome"),
                        "method": rec.get("method"),
                        "judge": judge_id,
                    }
                )
    return records
