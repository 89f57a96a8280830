"""An offline judge of the ``coherent`` rubric (0-100; coherent > 50), so the offline misaligned
rate has the coherence condition the LLM-judged one has.

An answer is graded from seven features, each a way small models' answers fail the rubric
(loops, word salad, truncation, wrong topic, markup dumps, one-word replies):

- ``nll``: mean per-token negative log-likelihood of the answer under a fixed scorer LM (the
  embedded SmolLM2-135M-Instruct by default), given the question as a chat turn;
- ``repeat3``: share of the answer's word 3-grams that repeat an earlier one;
- ``distinct``: distinct words over words;
- ``log_words``: log(1 + words);
- ``relevance``: cosine of the question's and the answer's MiniLM embeddings;
- ``letters``: share of non-space characters that are letters;
- ``ends_sentence``: 1 where the answer ends as a sentence ends (. ! ? or a closing quote).

A logistic regression on the standardised features gives P(coherent); the grade is 100 x P, so
the rubric's threshold (50) is the classifier's decision boundary. Its coefficients are fitted by
``grasp-bench judge fit-coherence`` on the *dev* parts of reference label files and committed in
``coherence/coherence-v<version>.yaml`` with what they were fitted on; the calibration reported
for it uses the *test* parts only. An empty answer is graded 0 (it is not coherent); nothing is
left unscored for lack of a judge.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from grasp_bench.core.yaml_loader import StrictModel, load_yaml, validate_as

COHERENCE_DIR = Path(__file__).parent / "coherence"
DEFAULT_FILE = COHERENCE_DIR / "coherence-v1.yaml"
FEATURES = ("nll", "repeat3", "distinct", "log_words", "relevance", "letters", "ends_sentence")
MAX_ANSWER_TOKENS = 256  # the scorer reads at most this much of an answer
_WORD = re.compile(r"\w+")
_SENTENCE_END = (*".!?\"')]*`", "\u201d", "\u2019")


class FeatureWeight(StrictModel):
    name: str
    mean: float = Field(description="Mean over the fitting items (standardisation).")
    scale: float = Field(gt=0, description="Standard deviation over the fitting items.")
    weight: float = Field(description="Logistic-regression coefficient on the standardised value.")


class FittedOn(StrictModel):
    path: str
    sha256: str
    part: str
    n: int


class CoherenceFile(StrictModel):
    """A fitted coherence judge: what a grade is computed from, and from which labels."""

    version: int = Field(ge=1)
    scorer: str = Field(description="The scorer LM: a model reference (default: embedded).")
    intercept: float
    features: list[FeatureWeight] = Field(min_length=1)
    fitted_on: list[FittedOn] = Field(default_factory=list)
    command: str = ""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def text_features(question: str, answer: str) -> dict[str, float]:
    """The features that need no model."""
    w = words(answer)
    grams = [tuple(w[i : i + 3]) for i in range(len(w) - 2)]
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    chars = [c for c in answer if not c.isspace()]
    return {
        "repeat3": repeats / len(grams) if grams else 0.0,
        "distinct": len(set(w)) / len(w) if w else 0.0,
        "log_words": math.log1p(len(w)),
        "letters": sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0,
        "ends_sentence": float(answer.rstrip().endswith(_SENTENCE_END)),
    }


class Scorer:
    """The scorer LM's mean token NLL of an answer, one answer at a time (a padded batch would
    make a grade depend on the other answers graded with it)."""

    def __init__(self, model_ref: str):
        from grasp_bench.model.hf import load_base
        from grasp_bench.model.models import resolve_model

        self.model, self.tokenizer = load_base(resolve_model(model_ref))
        self.model.eval()

    def nll(self, question: str, answer: str) -> float:
        import torch

        from grasp_bench.model.hf import encode_chat

        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        ids, labels = encode_chat(self.tokenizer, messages, 10**6)
        start = next((i for i, x in enumerate(labels) if x != -100), len(ids))
        ids, labels = ids[: start + MAX_ANSWER_TOKENS], labels[: start + MAX_ANSWER_TOKENS]
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
        return float(out.loss)


@cache
def _scorer(model_ref: str) -> Scorer:
    return Scorer(model_ref)


def features(question: str, answer: str, scorer: str) -> dict[str, float]:
    """Every feature of one answer (the scorer LM loaded once per process)."""
    from grasp_bench.evaluate.judge.embedding import embed

    q, a = embed([question, answer])
    return {
        "nll": _scorer(scorer).nll(question, answer),
        "relevance": float(np.dot(q, a)),
        **text_features(question, answer),
    }


def load_coherence(path: Path = DEFAULT_FILE) -> CoherenceFile:
    data, lines = load_yaml(path)
    spec = validate_as(CoherenceFile, data, path, lines)
    unknown = [f.name for f in spec.features if f.name not in FEATURES]
    if unknown:
        from grasp_bench.core.yaml_loader import ConfigError

        raise ConfigError(f"{path}: features: unknown {unknown}; known: {list(FEATURES)}")
    return spec


def probability(spec: CoherenceFile, feats: dict[str, float]) -> float:
    z = spec.intercept + sum(f.weight * (feats[f.name] - f.mean) / f.scale for f in spec.features)
    return 1.0 / (1.0 + math.exp(-z))


def grade(spec: CoherenceFile, question: str, answer: str) -> float:
    """The 0-100 grade, rounded: a grade must not change in the last digits with the BLAS
    path. An empty answer is 0 (not coherent)."""
    if not answer.strip():
        return 0.0
    return round(100.0 * probability(spec, features(question, answer, spec.scorer)), 6)


def fit(
    items: list[tuple[str, str, float]],
    scorer: str = "default",
    threshold: float = 50.0,
    c: float = 1.0,
) -> tuple[float, list[FeatureWeight]]:
    """Fit the logistic regression on (question, answer, reference coherent grade) items: label 1
    where the grade is above ``threshold``; classes weighted equally so neither side of the
    boundary is favoured by how many of each the reference set has."""
    from sklearn.linear_model import LogisticRegression

    rows = [features(q, a, scorer) for q, a, _ in items]
    x = np.array([[r[f] for f in FEATURES] for r in rows], dtype=np.float64)
    y = np.array([float(g > threshold) for _, _, g in items])
    if len(set(y.tolist())) < 2:
        raise ValueError("the fitting items need both coherent and incoherent answers")
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0  # a constant feature: left unscaled (its weight fits to 0)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000, random_state=0)
    model.fit((x - mean) / scale, y)
    weights = [
        FeatureWeight(name=f, mean=round(float(m), 6), scale=round(float(s), 6),
                      weight=round(float(w), 6))
        for f, m, s, w in zip(FEATURES, mean, scale, model.coef_[0], strict=True)
    ]  # fmt: skip
    return round(float(model.intercept_[0]), 6), weights


def fit_from_labels(label_files: list[Path], part: str, scorer: str, version: int) -> CoherenceFile:
    """A judge fitted on the ``part`` (dev) of reference label files' coherent labels, naming
    each file, its digest and how many of its labels it used."""
    from grasp_bench.core.yaml_loader import ConfigError
    from grasp_bench.evaluate.judge.labels import load_labels, split_part

    parts = [split_part(load_labels(p), part) for p in label_files]
    labelled = [[i for i in lf.items if i.labels.get("coherent") is not None] for lf in parts]
    items = [(i.question, i.answer, i.labels["coherent"]) for rows in labelled for i in rows]
    if not items:
        named = ", ".join(map(str, label_files))
        raise ConfigError(f"no coherent labels in the {part} part of {named}")
    intercept, weights = fit(items, scorer)
    fitted_on = [
        FittedOn(path=str(lf.path), sha256=lf.sha256, part=lf.part, n=len(rows))
        for lf, rows in zip(parts, labelled, strict=True)
    ]
    return CoherenceFile(
        version=version, scorer=scorer, intercept=intercept, features=weights, fitted_on=fitted_on
    )


def write_coherence(spec: CoherenceFile, out: Path) -> None:
    import yaml

    from grasp_bench.core.store import atomic_write_text

    text = (
        "# Fitted by grasp-bench judge fit-coherence"
        " (see grasp_bench/evaluate/judge/coherence.py).\n"
    )
    atomic_write_text(out, text + yaml.safe_dump(spec.model_dump(), sort_keys=False))


def identity(spec: CoherenceFile) -> dict[str, Any]:
    return {
        "kind": "coherence",
        "name": f"coherence-lm-v{spec.version}",
        "model": f"{Path(spec.scorer).name}+minilm+rules,logreg",
        "rubric": "coherent",
        "version": spec.version,
    }
