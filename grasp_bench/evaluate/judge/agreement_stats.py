"""The statistics of a judge's agreement with reference labels, each with a 95% percentile
bootstrap interval that resamples questions (the answers to one question are not independent).

A proportion the sample puts at 0 or 1 (a judge that caught every positive) has a bootstrap
interval of zero width: every resample agrees, whatever the sample's size. There the interval
is the exact (Clopper-Pearson) one for all-or-none over the questions that count for it
(positives' questions for recall, negatives' for specificity, ...), and the entry says so
(``exact_over``: that number of questions).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from grasp_bench.evaluate.judge.labels import Positive

if TYPE_CHECKING:
    import numpy as np

N_RESAMPLES = 2000
SEED = 0
ALPHA = 0.05


def exact_at_bound(value: float, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Clopper-Pearson interval for all (``value`` 1) or none (0) of ``n`` independent units:
    (alpha/2)^(1/n) is the lowest rate under which n of n would still be seen that often."""
    edge = (alpha / 2) ** (1 / n)
    return (edge, 1.0) if value == 1 else (0.0, 1.0 - edge)


def rubric_stats(ref: np.ndarray, judged: np.ndarray, weight: np.ndarray, pos: Positive):
    """Every statistic of one rubric on a weighted sample (weight = copies of each pair)."""
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    spearman = spearmanr(np.repeat(ref, weight), np.repeat(judged, weight)).statistic
    y_true = pos(ref)
    oriented = judged if pos.higher_is_positive else -judged
    try:
        auroc = roc_auc_score(y_true, oriented, sample_weight=weight)
    except ValueError:  # one class only
        auroc = math.nan
    return {"spearman": spearman, "auroc": auroc, **decision_stats(y_true, pos(judged), weight)}


def decision_stats(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray):
    """Precision, recall, Cohen's kappa, specificity and both rates of a yes/no decision on
    a weighted sample."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

    y_true, y_pred = y_true.astype(int), y_pred.astype(int)
    precision, recall, _, _ = precision_recall_fscore_support(
        y_true, y_pred, average="binary", sample_weight=weight, zero_division=np.nan
    )
    return {
        "precision": precision,
        "recall": recall,
        "kappa": cohen_kappa_score(y_true, y_pred, sample_weight=weight),
        # the true-negative rate: with recall, what a rate is corrected by (prevalence.py)
        "specificity": np.average(y_pred[y_true == 0] == 0, weights=weight[y_true == 0])
        if (y_true == 0).any()
        else np.nan,
        "reference_rate": np.average(y_true, weights=weight),
        "judged_rate": np.average(y_pred, weights=weight),
    }


def bootstrap(
    stats: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]],
    ref: list[float],
    judged: list[float],
    clusters: list[str],
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    units: dict[str, int] | None = None,
) -> dict[str, dict[str, float]]:
    """Each statistic on the sample (``mean``) and its 95% percentile interval over
    ``n_resamples`` resamples of the clusters (``lo``, ``hi``). ``units``: for a proportion,
    the clusters it is a share of; where the sample and every resample put it at 0 or 1, the
    interval is ``exact_at_bound`` over them (with ``exact_over``).

    ``stats(ref, judged, weight)`` sees the distinct (reference, judged) pairs weighted by
    their copies, so a resample with the same counts as an earlier one is not recomputed
    (graders of few levels repeat them often). A resample where a statistic is undefined (one
    class only) is left out of that statistic's interval; one undefined on the sample is nan.
    """
    import numpy as np
    import sklearn

    pairs, inverse = np.unique(np.column_stack([ref, judged]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    _, cluster_of = np.unique(np.asarray(clusters), return_inverse=True)
    cluster_of = cluster_of.reshape(-1)
    n_clusters = int(cluster_of.max()) + 1
    seen: dict[bytes, dict[str, float]] = {}

    def at(weight: np.ndarray) -> dict[str, float]:
        key = weight.tobytes()
        if key not in seen:
            keep = weight > 0
            seen[key] = stats(pairs[keep, 0], pairs[keep, 1], weight[keep])
        return seen[key]

    with warnings.catch_warnings(), sklearn.config_context(skip_parameter_validation=True):
        warnings.simplefilter("ignore")  # undefined statistics are nan, reported as null
        point = at(np.bincount(inverse, minlength=len(pairs)))
        draws = np.random.default_rng(seed).integers(0, n_clusters, (n_resamples, n_clusters))
        resampled = []
        for draw in draws:
            copies = np.bincount(draw, minlength=n_clusters)[cluster_of]
            weight = np.bincount(inverse, weights=copies, minlength=len(pairs)).astype(np.int64)
            resampled.append(at(weight))
    out = {}
    for name, value in point.items():
        values = np.array([r[name] for r in resampled], dtype=float)
        values = values[~np.isnan(values)]
        if math.isnan(value) or not len(values):
            out[name] = {"mean": float(value), "lo": math.nan, "hi": math.nan}
        else:
            lo, hi = np.percentile(values, [2.5, 97.5])
            out[name] = {"mean": float(value), "lo": float(lo), "hi": float(hi)}
            n = (units or {}).get(name, 0)
            bound = round(float(value))
            if n and bound in (0, 1) and max(abs(x - bound) for x in (value, lo, hi)) < 1e-9:
                lo, hi = exact_at_bound(bound, n)
                out[name] = {"mean": float(bound), "lo": lo, "hi": hi, "exact_over": n}
    return out


def proportion_units(y_true: list[bool], y_pred: list[bool], clusters: list[str]) -> dict[str, int]:
    """How many clusters (questions) each proportion is a share of: positives' for recall,
    negatives' for specificity, flagged answers' for precision, the smaller class's for
    AUROC, all for the rates."""

    def count(keep: list[bool]) -> int:
        return len({c for c, k in zip(clusters, keep, strict=True) if k})

    pos = count(y_true)
    neg = count([not t for t in y_true])
    return {"recall": pos, "specificity": neg, "precision": count(y_pred),
            "auroc": min(pos, neg), "reference_rate": len(set(clusters)),
            "judged_rate": len(set(clusters))}  # fmt: skip
