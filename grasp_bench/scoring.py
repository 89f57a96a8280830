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
        raise ValueError(f"no offline scorer for task {task!r}")
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


def _key(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("target", "prompt_id", "split", "sample")}


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
            from grasp_bench.models import resolve_model
            from grasp_bench.server import VLLMServer

            server = stack.enter_context(
                VLLMServer(resolve_model(judge_cfg.model), served_name="judge", log_path=server_log)
            )
            base_url, model = server.base_url, "judge"
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
