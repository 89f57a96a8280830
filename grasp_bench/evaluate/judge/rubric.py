"""Rubrics are data: a YAML file per rubric (prompt, scale, special outcomes, version)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from grasp_bench.core.yaml_loader import StrictModel, load_yaml, validate_as

RUBRIC_DIR = Path(__file__).parent / "rubrics"


class Range(StrictModel):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.max <= self.min:
            raise ValueError("max must be greater than min")
        return self


class Rubric(StrictModel):
    """A grading prompt and how its answer becomes a score."""

    name: str = Field(min_length=1, description="Metric name the scores are recorded under.")
    version: int = Field(ge=1, description="Bump on every change: it is part of the cache key.")
    description: str = Field("", description="What a high score means.")
    scale: Range = Field(description="The numbers the judge is asked to answer with.")
    maps_to: Range | None = Field(None, description="Linear map of the score (e.g. to -1..1).")
    outcomes: dict[str, str] = Field(
        default_factory=dict, description="Non-numeric answers (REFUSAL, CODE, ...) and meaning."
    )
    prompt: str = Field(description="Template with {question} and {answer}.")

    @field_validator("prompt")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        for key in ("{question}", "{answer}"):
            if key not in v:
                raise ValueError(f"must contain {key}")
        return v

    def render(self, question: str, answer: str) -> str:
        return self.prompt.replace("{question}", question).replace("{answer}", answer)

    @property
    def prompt_hash(self) -> str:
        return hashlib.sha256(self.prompt.encode()).hexdigest()[:12]

    def map(self, value: float) -> float:
        if self.maps_to is None:
            return value
        frac = (value - self.scale.min) / (self.scale.max - self.scale.min)
        return self.maps_to.min + frac * (self.maps_to.max - self.maps_to.min)


def load_rubric(name_or_path: str | Path) -> Rubric:
    """A rubric shipped with grasp-bench by name, or any rubric YAML by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RUBRIC_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in RUBRIC_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no rubric {name_or_path!r}; shipped rubrics: {known}")
    data, lines = load_yaml(path)
    return validate_as(Rubric, data, path, lines)
