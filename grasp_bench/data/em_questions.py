"""Import question files in the emergent-misalignment YAML layout, so users can run the
published question sets they have on disk.

Each entry: ``id``, ``type`` (e.g. ``free_form_judge_0_100``), ``paraphrases`` (list of
questions), ``samples_per_paraphrase`` and ``judge_prompts`` (metric -> template with
``{question}`` and ``{answer}``); optional ``system``. Errors name the file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from grasp_bench.core.yaml_loader import ConfigError, StrictModel, load_yaml, validate_as


class EMQuestion(StrictModel):
    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    paraphrases: list[str] = Field(min_length=1)
    samples_per_paraphrase: int = Field(1, gt=0)
    judge_prompts: dict[str, str] = Field(default_factory=dict)
    system: str | None = None
    judge: str | None = None  # the judge model the authors used; recorded, not required

    @field_validator("paraphrases")
    @classmethod
    def _not_blank(cls, v: list[str]) -> list[str]:
        blank = [k for k, text in enumerate(v) if not text.strip()]
        if blank:  # a blank prompt would be generated from and scored like a question
            raise ValueError(f"paraphrase {blank[0]} is blank")
        return v


def import_em_questions(path: Path) -> list[dict[str, Any]]:
    """Rows in the grasp_misalignment eval layout, one per paraphrase."""
    path = Path(path)
    data, lines = load_yaml(path)
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}:1 <root>: expected a list of questions")
    rows, seen = [], set()
    for i, entry in enumerate(data):
        q = validate_as(EMQuestion, entry, path, lines, prefix=(i,))
        if q.id in seen:
            raise ConfigError(f"{path}:{lines.get((i, 'id'), 1)} [{i}].id: duplicate id {q.id!r}")
        seen.add(q.id)
        for name, template in q.judge_prompts.items():
            for key in ("{question}", "{answer}"):
                if key not in template:
                    line = lines.get((i, "judge_prompts", name), 1)
                    raise ConfigError(
                        f"{path}:{line} [{i}].judge_prompts.{name}: template lacks {key}"
                    )
        for k, text in enumerate(q.paraphrases):
            rows.append(
                {
                    "id": f"{q.id}-p{k}",
                    "category": q.id,
                    "question": text,
                    "samples": q.samples_per_paraphrase,
                    "system": q.system,
                    "judge_prompts": q.judge_prompts,
                }
            )
    return rows


def em_drift_prompts(path: Path) -> list[dict[str, Any]]:
    """The file's questions as drift-split eval prompts (system prompt included)."""
    prompts = []
    for row in import_em_questions(path):
        messages = [{"role": "system", "content": row["system"]}] if row["system"] else []
        prompts.append(
            {
                "prompt_id": row["id"],
                "split": "drift",
                "messages": [*messages, {"role": "user", "content": row["question"]}],
                "target": None,
                "samples": row["samples"],
            }
        )
    return prompts
