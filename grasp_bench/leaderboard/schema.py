"""Result files as pydantic models; their JSON Schema is committed at leaderboard/schema/.

A submission is data, never code: JSON, JSONL, YAML and safetensors only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from grasp_bench.core.names import safe_name
from grasp_bench.core.yaml_loader import StrictModel

SCHEMA_VERSION = 1


class Strict(StrictModel):
    """The one strict base (unknown keys, infinities and NaN are errors): a result with no
    number says so with null and a reason, never NaN."""


class JudgeScore(Strict):
    """One metric of one completion, or why it has none."""

    value: float | None = Field(description="The score; null when unscored.")
    reason: str | None = Field(None, description="Why it is unscored (required when null).")
    judge: dict[str, str | int | float | None] = Field(description="Judge identity.")


class SampleRecord(Strict):
    """One completion of one prompt by one method at one seed, with all its scores."""

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Bump on format changes.")
    task: str = Field(description="Benchmark task.")
    method: str = Field(description="Method label.")
    model: str = Field(description="Base model reference.")
    seed: int = Field(description="Training seed.")
    prompt_id: str = Field(description="Eval prompt (the clustering unit of every CI).")
    split: Literal["task", "drift"] = Field(description="In-domain task prompt or unrelated.")
    sample: int = Field(ge=0, description="Sample index for this prompt.")
    completion_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hash of the text.")
    scores: dict[str, JudgeScore] = Field(description="Metric name -> score.")


class Estimate(Strict):
    """A mean with its 95% CI (clustered by prompt, pooled over seeds)."""

    mean: float | None
    lo: float | None
    hi: float | None
    n: int = Field(ge=0)


class Summary(Strict):
    """What one submission claims; every number is recomputed from its samples on validation."""

    schema_version: Literal[1] = SCHEMA_VERSION
    task: str
    method: str = Field(pattern=f"^{safe_name(64).pattern}$")
    model: str
    description: str = ""
    seeds: list[int] = Field(min_length=1)
    eval_set_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hash of the prompts.")
    judges: list[str] = Field(description="Judge identities that produced the scores.")
    backend: str = Field(description="Generation back end (vllm or hf).")
    n_samples: int = Field(gt=0)
    drift: Estimate
    task_score: Estimate
    drift_metric: str | None = Field(None, description="The task's drift metric (its name).")
    drift_judge: str | None = Field(None, description="The judge(s) that made the drift number.")
    task_metric: str | None = Field(None, description="The task's task metric (its name).")
    task_judge: str | None = Field(None, description="The judge(s) that made the task score.")
    coherence: Estimate | None = None
    unscored_share: float = Field(ge=0, le=1)
    judge_canaries: list[str] = Field(
        default_factory=list,
        description="The run's canary check per LLM-judged rubric ('aligned: canaries stable',"
        " or 'drifted' with the canaries that moved); empty where no LLM judge graded.",
    )
    training_data: str = Field(
        "not recorded",
        description="What the methods trained on: 'published:NAME', a user file by its hash, or"
        " the task's generated smoke-test data.",
    )


def write_json_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in (SampleRecord, Summary):
        p = out_dir / f"{model.__name__.lower()}.v{SCHEMA_VERSION}.schema.json"
        p.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
        paths.append(p)
    return paths
