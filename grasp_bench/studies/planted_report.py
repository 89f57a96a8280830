"""What a planted-direction run shows about GRASP: does a reading find v, does it carry the style,
and how far does each trained model move along v on unrelated prompts.

Three measurements, each against the task's planted truth (``direction.safetensors``, its
``teacher/`` adapter beside it):

- identification: |cos| of every reading of the naive LoRA with v, per layer and seed;
- function: the base model steered at one layer by +-a u (u a reading, a the teacher's own mean
  shift along v there, so every direction gets the same norm), share of answers in the style;
- projection: each trained adapter's mean shift of the residual stream along v on the drift
  prompts, as a fraction of the teacher's (0: no reliance on v, 1: the teacher's).

Run by ``grasp-bench planted-report RUN_DIR``; forward passes and short generations only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from grasp_bench.core.rundir import METHOD_CARD, parse_target, target_name
from grasp_bench.evaluate.judge.offline import persona_shown
from grasp_bench.model.directions import Directions, load_directions
from grasp_bench.model.hooks import ResidualCapture, add_vector_hooks, remove


def _encode(tok: Any, prompts: list[str]) -> dict[str, torch.Tensor]:
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


@torch.no_grad()
def mean_along(model: Any, enc: dict[str, torch.Tensor], layer: int, v: torch.Tensor) -> float:
    """Mean over the prompts' tokens of the residual stream after ``layer``, projected on v."""
    with ResidualCapture(model) as cap:
        model(**enc)
    h = cap.outputs[layer]
    mask = enc["attention_mask"].bool()
    return float((h[mask].double() @ v[:, 0].double()).mean())


@torch.no_grad()
def style_rate(
    model: Any, tok: Any, enc: dict[str, torch.Tensor], max_tokens: int, hooks: list[Any]
) -> float:
    """Share of greedy answers that show the style; ``hooks`` are removed afterwards."""
    try:
        gen = model.generate(
            **enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
    finally:
        remove(hooks)
    texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(map(persona_shown, texts)) / len(texts)


def functional_test(
    model: Any,
    tok: Any,
    directions: dict[str, Directions],
    layer: int,
    alpha: float,
    prompts: list[str],
    max_tokens: int = 24,
) -> pd.DataFrame:
    """Style rate of the base model steered by +alpha u and -alpha u for each named direction
    (the sign of a reading is arbitrary; ``best`` is the larger), and unsteered."""
    enc = _encode(tok, prompts)
    rows = [{"direction": "none", "plus": style_rate(model, tok, enc, max_tokens, [])}]
    for name, dirs in directions.items():
        u = dirs[layer][:, 0] / dirs[layer][:, 0].norm()
        rates = {
            sign: style_rate(
                model, tok, enc, max_tokens, add_vector_hooks(model, {layer: s * alpha * u})
            )
            for sign, s in (("plus", 1.0), ("minus", -1.0))
        }
        rows.append({"direction": name, **rates})
    table = pd.DataFrame(rows)
    table["best"] = table[["plus", "minus"]].max(axis=1, skipna=True)
    return table


def planted_truth(truth: Path) -> tuple[Directions, Path, int]:
    """The planted directions, the teacher adapter beside them and the first written layer."""
    from safetensors import safe_open

    with safe_open(str(truth), "pt") as fh:
        prov = json.loads(fh.metadata().get("provenance", "{}"))
    if prov.get("kind") != "planted":
        raise ValueError(f"{truth}: not a planted direction (provenance kind {prov.get('kind')})")
    teacher = truth.parent / "teacher"
    if not (teacher / "adapter_config.json").exists():
        raise FileNotFoundError(f"{teacher}: the teacher adapter is missing")
    return load_directions(truth), teacher, int(prov["from_layer"])


def projection_table(
    base_model: str,
    adapters: dict[str, Path],
    teacher: Path,
    v: torch.Tensor,
    layer: int,
    prompts: list[str],
    trust_remote_code: bool = False,
) -> pd.DataFrame:
    """Each adapter's shift along v at ``layer`` over the prompts, relative to the teacher's."""
    from peft import PeftModel

    from grasp_bench.model.hf import load_base

    model, tok = load_base(base_model, trust_remote_code)
    model.eval()
    enc = _encode(tok, prompts)
    base = mean_along(model, enc, layer, v)
    tuned = PeftModel.from_pretrained(model, str(teacher), adapter_name="teacher")
    teacher_shift = mean_along(tuned, enc, layer, v) - base
    rows = []
    for name, path in adapters.items():
        tuned.load_adapter(str(path), adapter_name="student")
        tuned.set_adapter("student")
        shift = mean_along(tuned, enc, layer, v) - base
        rows.append({"target": name, "shift": shift, "v_shift": shift / teacher_shift})
        tuned.set_adapter("teacher")
        tuned.delete_adapter("student")
    table = pd.DataFrame(rows)
    table.attrs["teacher_shift"] = teacher_shift
    return table


def seed_summary(
    table: pd.DataFrame, by: list[str], value: str, n_units: int | None = None
) -> pd.DataFrame:
    """Mean of ``value`` over seeds per group, with a t-interval (95%) over the seeds. A rate
    (``n_units``: the prompts each seed's rate is over) whose seeds all sit at 0 or at 1 gets
    the Wilson interval at that many prompts instead of a zero-width one."""
    from scipy import stats

    from grasp_bench.core.stats import widen_at_bound

    rows = []
    for key, part in table.groupby(by, sort=False):
        x = part[value].astype(float).to_numpy()
        mean = float(x.mean())
        if len(x) > 1:
            half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / len(x) ** 0.5)
        else:
            half = float("nan")
        lo, hi = mean - half, mean + half
        if n_units:
            lo, hi = widen_at_bound(mean, lo, hi, n_units)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                value: round(mean, 4),
                "ci_low": round(lo, 4),
                "ci_high": round(hi, 4),
                "seeds": len(x),
            }
        )
    return pd.DataFrame(rows)


def _with_method_and_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``target`` names read back into ``method`` and ``seed`` columns."""
    parsed = [parse_target(name) for name in frame["target"]]
    return frame.assign(method=[m for m, _ in parsed], seed=[s for _, s in parsed])


def seed_table(scores: list[dict[str, Any]]) -> pd.DataFrame:
    """Per method and seed: the style rate on the drift split and the exact-match rate on the
    task split (the CIs over seeds are then t-intervals of these per-seed means)."""
    t = pd.DataFrame(scores)
    t = t[t["value"].notna()]
    t = _with_method_and_seed(t)
    drift = t[(t["metric"] == "persona") & (t["split"] == "drift")]
    task = t[(t["metric"] == "correct") & (t["split"] == "task")]
    return (
        drift.groupby(["method", "seed"], sort=False)["value"]
        .mean()
        .rename("persona")
        .to_frame()
        .join(task.groupby(["method", "seed"], sort=False)["value"].mean().rename("correct"))
        .reset_index()
    )


def report_run(
    run_dir: Path,
    base_model: str,
    train_rows: list[dict[str, Any]],
    seeds: list[int],
    truth: Path,
    prompts: list[str],
    functional_prompts: int = 40,
    source: str = "lora",
    trust_remote_code: bool = False,
) -> dict[str, pd.DataFrame]:
    """Identification, function and projection tables of a planted run (every seed)."""
    from grasp_bench.core.rundir import RunDir
    from grasp_bench.studies.identification import compare, read_all

    run = RunDir(Path(run_dir))
    planted, teacher, first = planted_truth(truth)
    n_layers = max(planted) + 1
    steer_layer = first + (n_layers - first) // 2
    v = planted[steer_layer]
    ident, func = [], []
    for seed in seeds:
        adapter = run.adapter(target_name(source, seed))
        if not (adapter / "adapter_model.safetensors").exists():
            raise FileNotFoundError(f"{adapter}: no trained {source} adapter at seed {seed}")
        readings, (tuned, tok) = read_all(
            base_model, adapter, train_rows, seed, trust_remote_code=trust_remote_code
        )
        ident.append(compare(readings, planted).assign(seed=seed))
        base = tuned.get_base_model()
        enc = _encode(tok, prompts[:functional_prompts])
        with torch.no_grad():
            before = mean_along(base, enc, steer_layer, v)
            tuned.load_adapter(str(teacher), adapter_name="teacher")
            tuned.set_adapter("teacher")
            tuned.enable_adapter_layers()
            alpha = mean_along(tuned, enc, steer_layer, v) - before
            tuned.set_adapter("default")
            tuned.delete_adapter("teacher")
            tuned.disable_adapter_layers()
        func.append(
            functional_test(
                tuned,
                tok,
                {"truth": planted, **readings},
                steer_layer,
                abs(alpha),
                prompts[:functional_prompts],
            ).assign(seed=seed, layer=steer_layer, alpha=abs(alpha))
        )
    from grasp_bench.train.methods.base import get_method_class

    def served_plain(adapter: Path) -> bool:  # an inference-time hook is not in the weights
        card = json.loads((adapter / METHOD_CARD).read_text())
        return get_method_class(card["method"]).serving != "hf-hooks"

    adapters = {
        p.parent.name: p
        for p in sorted(run.train.glob("*/adapter"))
        if (p / "adapter_model.safetensors").exists() and served_plain(p)
    }
    proj = projection_table(
        base_model, adapters, teacher, v, steer_layer, prompts, trust_remote_code
    )
    proj = _with_method_and_seed(proj)
    from grasp_bench.core.store import read_jsonl

    scores = read_jsonl(run.scores)
    per_seed = seed_table(scores)
    prompts_of = {  # 0 (no widening) where records carry no prompt ids
        split: len({r["prompt_id"] for r in scores if r["split"] == split and "prompt_id" in r})
        for split in ("drift", "task")
    }
    ident_t = pd.concat(ident, ignore_index=True)
    func_t = pd.concat(func, ignore_index=True)
    return {
        "seeds": per_seed,
        "drift_summary": seed_summary(per_seed, ["method"], "persona", prompts_of["drift"]),
        "task_summary": seed_summary(per_seed, ["method"], "correct", prompts_of["task"]),
        "identification": ident_t,
        "identification_summary": seed_summary(
            ident_t[ident_t["layer"] >= first]
            .groupby(["reading", "seed"], as_index=False, sort=False)["abs_cos"]
            .mean(),
            ["reading"],
            "abs_cos",
        ).merge(
            seed_summary(ident_t[ident_t["layer"] == steer_layer], ["reading"], "abs_cos")[
                ["reading", "abs_cos"]
            ].rename(columns={"abs_cos": f"abs_cos_layer_{steer_layer}"}),
            on="reading",
        ),
        "functional": func_t,
        "functional_summary": seed_summary(func_t, ["direction"], "best"),
        "projection": proj,
        "projection_summary": seed_summary(proj, ["method"], "v_shift"),
    }
