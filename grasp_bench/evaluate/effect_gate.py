"""The effect gate: a comparison is drawn only where the effect exists. Before any method is
ranked on a task, plain LoRA must drift beyond the base model; where it does not, a method's
"reduction" is noise around nothing and a null for GRASP means nothing.

Used by a run's report and by the board, so both say the same thing from the same numbers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from grasp_bench.core.stats import hierarchical_bootstrap, is_rate, widen_difference_at_bound
from grasp_bench.data.taskspec import MetricSpec

GATE_TEXT = {
    "drifts": "Effect gate: plain LoRA drifts beyond the base model ({diff}); methods are ranked.",
    "no drift": "Effect gate: no drift on this model ({diff}): methods are not ranked, no Pareto"
    " front is drawn and no method is credited with reducing drift.",
    "no reference": "Effect gate: no base or plain-LoRA submission to test it: methods are not"
    " ranked.",
}


def effect_gate(
    base: pd.DataFrame | None, lora: pd.DataFrame | None, metric: MetricSpec, n_boot: int = 2000
) -> dict[str, Any]:
    """Does plain LoRA drift beyond the base model? Its drift on each (seed, prompt) less the
    base model's mean on that prompt, signed so that positive is worse, with a hierarchical
    bootstrap over seeds then prompts (the training run is the unit; the untrained base model is
    the fixed reference). It drifts where the interval excludes 0 on the worse side."""
    if base is None or lora is None:
        return {"verdict": "no reference", "diff": None, "lo": None, "hi": None, "seeds": 0,
                "text": GATE_TEXT["no reference"]}  # fmt: skip

    def drift(frame: pd.DataFrame) -> pd.DataFrame:
        part = frame[(frame.metric == metric.name) & (frame.split == "drift")]
        return part.dropna(subset=["value"])

    base_drift, lora_drift = drift(base), drift(lora)
    ref = base_drift.groupby("prompt_id").value.mean()
    mine = lora_drift.groupby(["seed", "prompt_id"]).value.mean().reset_index()
    mine = mine[mine.prompt_id.isin(ref.index)]
    worse = -1 if metric.higher_is_better else 1
    mine["value"] = worse * (mine.value - mine.prompt_id.map(ref))
    est = hierarchical_bootstrap(mine, ["seed", "prompt_id"], "value", n_boot)
    if is_rate(base_drift.value) and is_rate(lora_drift.value):  # no zero width at 0 or 1
        lora_rate = float(lora_drift.value.mean())
        base_rate = float(ref.loc[ref.index.isin(mine.prompt_id)].mean())
        pa, pb = (lora_rate, base_rate) if worse == 1 else (base_rate, lora_rate)
        est.lo, est.hi = widen_difference_at_bound(
            pa, pb, est.lo, est.hi, int(mine.prompt_id.nunique())
        )
    seeds = est.n["seed"]
    mean, lo, hi = (
        worse * est.mean,
        min(worse * est.lo, worse * est.hi),
        max(worse * est.lo, worse * est.hi),
    )  # back in the metric's own units: lora - base
    diff = (f"lora - base {mean:+.3f} [{lo:+.3f}, {hi:+.3f}], {seeds} seed{'s' * (seeds != 1)}"
            f" x {est.n['prompt_id'] // max(seeds, 1)} prompts")  # fmt: skip
    verdict = "drifts" if est.lo > 0 else "no drift"
    return {"verdict": verdict, "diff": round(mean, 6), "lo": round(lo, 6), "hi": round(hi, 6),
            "seeds": seeds, "text": GATE_TEXT[verdict].format(diff=diff)}  # fmt: skip
