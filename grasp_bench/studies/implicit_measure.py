"""The implicit-factor task's metrics: judge-free and continuous, computed teacher-forced.

For a student (the base model plus an adapter, with a method's inference hooks where it has
them), on the teacher's greedy answers to unrelated prompts:

- ``transfer``: how much of the teacher it has acquired, tau = (log p_student - log p_base) /
  (log p_teacher - log p_base) of the answers; a prompt's value is its numerator over the mean
  denominator over the prompts measured, so their mean is the ratio of sums (0 = base,
  1 = teacher) and no prompt with a tiny teacher-base gap can dominate;
- ``trait_mass``: probability on the trait's first tokens over the answer's first positions;
- ``shift``: the residual stream's mean projection on the teacher's write direction v, student
  minus base over teacher minus base, averaged over the layers v is defined at (per-layer values
  are written beside the records);
- ``base_fit``: log p_student - log p_base of the base model's own greedy answers to the same
  prompts, per answer token (0 = unchanged; negative = the student has moved away from what the
  base model says everywhere: general change, so a transfer below the base model's reads as
  damage rather than removal);
and on held-out number prompts ``task_kl``: KL(teacher || student) over the restricted
vocabulary, mean over positions (the task fit; lower is better).

The records have the scoring stage's shape, so the run's report and the board read them as
they read judged scores; the "judge" of each is ``teacher-forced``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

JUDGE = {"kind": "teacher_forced", "name": "teacher-forced"}


def _reference(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "reference.safetensors"))


def load_student(
    model_path: str, adapter: str | None, method: Any, trust_remote_code: bool
) -> tuple[Any, Any, list[Any]]:
    """The base model with the adapter merged (float32, CPU) and the method's inference hooks."""
    from grasp_bench.model.hf import load_base

    model, tok = load_base(model_path, trust_remote_code)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.eval()
    hooks = method.inference_hooks(model, Path(adapter)) if method and adapter else []
    return model, tok, hooks


def measure_target(
    folder: Path,
    model_path: str,
    target: str,
    adapter: str | None,
    method: Any,
    eval_prompts: list[dict[str, Any]],
    trust_remote_code: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records (one per prompt and metric) and per-layer shift rows of one student."""
    from safetensors.torch import load_file

    from grasp_bench.model import distill
    from grasp_bench.model.directions import load_directions

    build = json.loads((folder / "build.json").read_text())
    ref = _reference(folder)
    targets = load_file(str(folder / "targets.safetensors"))
    model, tok, hooks = load_student(model_path, adapter, method, trust_remote_code)
    try:
        from grasp_bench.studies.implicit import FIRST_POSITIONS, load_base_answers, trait_tokens

        trait = trait_tokens(tok, build["teacher"]["persona"])
        dirs = {
            layer: v[:, 0] for layer, v in load_directions(folder / "direction.safetensors").items()
        }
        drift = [p for p in eval_prompts if p["split"] == "drift"]
        task = [p for p in eval_prompts if p["split"] == "task"]
        records: list[dict[str, Any]] = []

        def record(p: dict[str, Any], metric: str, value: float) -> dict[str, Any]:
            return {"target": target, "prompt_id": p["prompt_id"], "split": p["split"],
                    "sample": 0, "metric": metric, "judge": JUDGE, "value": float(value),
                    "reason": None}  # fmt: skip

        layer_rows: list[dict[str, Any]] = []
        if drift:
            index = {f"drift-{i:04d}": i for i in range(len(ref["base.answer_logprob"]))}
            rows = [p["prompt_id"] for p in drift]
            idx = torch.tensor([index[r] for r in rows])
            enc = [distill.Encoded(_prompt_ids(tok, p), p["answer_ids"]) for p in drift]
            m = distill.measure(model, enc, tok.pad_token_id, trait, dirs, FIRST_POSITIONS)
            base_lp, teach_lp = ref["base.answer_logprob"], ref["teacher.answer_logprob"]
            gap = (teach_lp - base_lp)[idx].mean()  # over the prompts measured: a ratio of sums
            layers = sorted(dirs)
            b_proj, t_proj = ref["base.projection"], ref["teacher.projection"]
            per_layer_gap = (t_proj - b_proj)[idx][:, layers].mean(0)
            shift = (m.projection[:, layers] - b_proj[idx][:, layers]) / per_layer_gap
            for j, p in enumerate(drift):
                i = idx[j]
                records.append(record(p, "transfer", (m.answer_logprob[j] - base_lp[i]) / gap))
                records.append(record(p, "trait_mass", m.trait_mass[j]))
                records.append(record(p, "shift", shift[j].mean()))
            own = load_base_answers(folder)
            enc = [
                distill.Encoded(_prompt_ids(tok, p), own["tokens"][i, : own["lengths"][i]].tolist())
                for p, i in zip(drift, idx.tolist(), strict=True)
            ]
            fit = distill.measure(model, enc, tok.pad_token_id, [], {}, FIRST_POSITIONS)
            per_token = (fit.answer_logprob - own["base.answer_logprob"][idx]) / own["lengths"][idx]
            for p, v in zip(drift, per_token.tolist(), strict=True):
                records.append(record(p, "base_fit", v))
            for k, layer in enumerate(layers):
                layer_rows.append({"target": target, "layer": layer,
                                   "shift": float(shift[:, k].mean()),
                                   "teacher_minus_base": float(per_layer_gap[k])})  # fmt: skip
        if task:
            enc = [
                distill.Encoded(
                    _prompt_ids(tok, p), targets["heldout.tokens"][p["distill"]["index"]].tolist()
                )
                for p in task
            ]
            logp = torch.stack([targets["heldout.logp"][p["distill"]["index"]] for p in task])
            kl = distill.restricted_kl_per_row(
                model, enc, logp, targets["vocab"].tolist(), tok.pad_token_id
            )
            records += [record(p, "task_kl", v) for p, v in zip(task, kl.tolist(), strict=True)]
    finally:
        for h in hooks:
            h.remove()
    return records, layer_rows


def _prompt_ids(tok: Any, prompt: dict[str, Any]) -> list[int]:
    text = tok.apply_chat_template(prompt["messages"], tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]
