"""The LLM judge: any OpenAI-compatible endpoint through the ``openai`` client.

Concurrency is a bounded thread pool; retries with backoff on 429, 5xx, timeouts and dropped
connections are the client's own (``max_retries``), with a per-call timeout. A call that keeps
failing or an answer that cannot be parsed is recorded as unscored with the reason, never as 0.
The API key is read from the environment, redacted from every reason, and never stored.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field
from tqdm.auto import tqdm

from grasp_bench.core.yaml_loader import StrictModel
from grasp_bench.evaluate.judge.base import JudgeItem
from grasp_bench.evaluate.judge.cache import JudgeCache, cache_key
from grasp_bench.evaluate.judge.numeric import parse_score
from grasp_bench.evaluate.judge.rubric import Rubric


class LLMJudgeConfig(StrictModel):
    """Where the judge is and how hard to try."""

    model: str = Field(description="Model name at the endpoint.")
    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable with the key.")
    concurrency: int = Field(8, gt=0, description="Judge calls in flight at once.")
    timeout: float = Field(60.0, gt=0, description="Seconds per call.")
    max_retries: int = Field(3, ge=0, description="Retries on 429/5xx/timeouts (with backoff).")
    top_logprobs: int = Field(20, ge=0, le=20, description="0 disables logprob weighting.")
    max_tokens: int = Field(8, gt=0, description="Judge answer length.")


def endpoint_host(base_url: str) -> str:
    """Host and port only: no credentials, path or query ever reach a result file."""
    parts = urlsplit(base_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else ""


class LLMJudge:
    """Grades with a rubric prompt at an OpenAI-compatible endpoint. ``identity`` (the judge's
    name in results and the cache key) is the endpoint and model name; ``identity_overrides``
    replaces them where they do not identify the judge, e.g. a local server's random port and
    its served alias."""

    def __init__(
        self,
        config: LLMJudgeConfig,
        cache: JudgeCache | None = None,
        identity_overrides: dict[str, Any] | None = None,
    ):
        from openai import OpenAI

        self.config = config
        self.cache = cache
        self.identity_overrides = identity_overrides or {}
        self._key = os.environ.get(config.api_key_env) or "EMPTY"
        self.client = OpenAI(
            base_url=config.base_url,
            api_key=self._key,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )
        self.calls = 0

    def identity(self, rubric: Rubric) -> dict[str, Any]:
        return {
            "kind": "openai",
            "model": self.config.model,
            "endpoint": endpoint_host(self.config.base_url),
            "rubric": rubric.name,
            "rubric_version": rubric.version,
            "prompt_hash": rubric.prompt_hash,
            **self.identity_overrides,
        }

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key and self._key != "EMPTY" else text

    def _call(self, rubric: Rubric, prompt: str) -> dict[str, Any]:
        self.calls += 1
        kwargs: dict[str, Any] = {}
        if self.config.top_logprobs:
            kwargs = {"logprobs": True, "top_logprobs": self.config.top_logprobs}
        try:
            resp = self.client.chat.completions.create(
                model=self.config.model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=self.config.max_tokens,
                temperature=0.0,
                seed=0,
                **kwargs,
            )
            choice = resp.choices[0]
            text = choice.message.content or ""
        except Exception as exc:  # every failure becomes a recorded reason, none is lost
            return {
                "value": None,
                "reason": self._redact(f"call failed: {type(exc).__name__}: {exc}")[:500],
                "failed": True,
            }
        first_top = None
        content = getattr(choice.logprobs, "content", None) if choice.logprobs else None
        if content:
            # the position where the number starts (after any "Score:" label)
            first = next((c for c in content if c.token.strip()[:1].isdigit()), None)
            if first is not None and first.top_logprobs:
                first_top = {t.token: t.logprob for t in first.top_logprobs}
        parsed = parse_score(
            text, rubric.scale.min, rubric.scale.max, list(rubric.outcomes), first_top
        )
        return {
            "value": None if parsed.value is None else rubric.map(parsed.value),
            "raw_value": parsed.value,
            "outcome": parsed.outcome,
            "reason": parsed.reason,
            "method": parsed.method,
            "judge_text": text[:500],
        }

    def score(
        self, rubric: Rubric, items: list[JudgeItem], progress: bool = True
    ) -> list[dict[str, Any]]:
        """One record per item: value (mapped) or None with a reason; judge identity attached."""
        identity = self.identity(rubric)
        prompts = [rubric.render(i.question, i.answer) for i in items]
        keys = [cache_key(identity, rubric.name, rubric.version, p) for p in prompts]

        def one(idx: int) -> dict[str, Any]:
            if self.cache is not None:
                hit = self.cache.get(keys[idx])
                if hit is not None:
                    return {**hit, "cached": True}
            record = {**self._call(rubric, prompts[idx]), "judge": identity}
            if self.cache is not None and not record.get("failed"):
                self.cache.put(keys[idx], record)
            return {**record, "cached": False}

        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(
                tqdm(
                    pool.map(one, range(len(items))),
                    total=len(items),
                    desc=f"judge {rubric.name}",
                    disable=not progress,
                )
            )
