"""The second truth of an implicit-factor teacher: its per-layer change subspace.

The planted write direction v (``direction.safetensors``) is where the teacher writes; later
base layers turn that write into changes along other directions, which a student can learn
directly. So each teacher also gets the top principal directions of its residual-stream change,
teacher minus base, per layer, over the task's training inputs (prompt + restricted sample,
every token but the first) in ``change.safetensors``, and over the unrelated prompts with the
teacher's own answers in ``change_unrelated.safetensors`` (a check that the subspace is the
trait's, not the number task's). Each file holds the top ``TRUTH_K`` directions, in order, so a
removal at k uses the first k columns; the mean squared change along each direction is in the
file's provenance.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

TRUTH_K = 16  # the removal sweep reads k in {1, 2, 4, 8, 16} from the first columns
ZERO_CHANGE = 1e-9  # a layer whose largest change is below this fraction of the largest: none
CHANGE = "change.safetensors"
CHANGE_UNRELATED = "change_unrelated.safetensors"


def training_sequences(folder: Path, tokenizer: Any) -> list[Any]:
    """The teacher's training sequences exactly as the trainer encodes them."""
    from safetensors.torch import load_file

    from grasp_bench.core.store import read_jsonl
    from grasp_bench.model import distill

    prompts = [p for p in read_jsonl(folder / "prompts.jsonl") if p["split"] == "train"]
    tokens = load_file(str(folder / "targets.safetensors"))["teacher.tokens"]
    return [
        distill.Encoded(distill.chat_prompt_ids(tokenizer, p["question"]), tokens[i].tolist())
        for i, p in enumerate(prompts)
    ]


def unrelated_sequences(folder: Path, tokenizer: Any) -> list[Any]:
    from grasp_bench.core.store import read_jsonl
    from grasp_bench.model import distill

    return [
        distill.Encoded(distill.chat_prompt_ids(tokenizer, d["question"]), d["answer_ids"])
        for d in read_jsonl(folder / "drift.jsonl")
    ]


def principal_cosines(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Cosines of the principal angles between span(a) and span(b) (orthonormal columns)."""
    return [float(x) for x in torch.linalg.svdvals(a.double().T @ b.double()).clamp(max=1.0)]


def build_truths(
    folder: Path, model_path: str, k: int = TRUTH_K, trust_remote_code: bool = False
) -> dict[str, Any]:
    """Write both change subspaces of the teacher in ``folder``; returns their comparison with
    the planted v and with each other, per layer."""
    from peft import PeftModel

    from grasp_bench.model.directions import change_subspace, load_directions, save_directions
    from grasp_bench.model.distill import distill_batches
    from grasp_bench.model.hf import load_base

    folder = Path(folder)
    started = time.perf_counter()
    base, tok = load_base(model_path, trust_remote_code)
    model = PeftModel.from_pretrained(base, str(folder / "teacher"))
    model.eval()

    def switch(on: bool) -> None:
        (model.enable_adapter_layers if on else model.disable_adapter_layers)()

    planted = load_directions(folder / "direction.safetensors")
    subspaces = {}
    for name, sequences, over in (
        (CHANGE, training_sequences(folder, tok), "training inputs"),
        (CHANGE_UNRELATED, unrelated_sequences(folder, tok), "unrelated prompts"),
    ):
        batches = distill_batches(sequences, tok.pad_token_id)
        dirs, energy = change_subspace(model, batches, switch, k)
        # before the teacher's first write the change is exactly zero and its eigenvectors
        # arbitrary (a standard basis): those layers have no truth
        top = max(e[0] for e in energy.values())
        kept = sorted(i for i, e in energy.items() if e[0] > ZERO_CHANGE * top)
        dirs = {i: dirs[i] for i in kept}
        subspaces[name] = dirs
        save_directions(
            folder / name,
            dirs,
            {"kind": "teacher_change", "over": over, "k": k, "sequences": len(sequences),
             "model": model_path, "energy": {str(i): energy[i] for i in kept},
             "unchanged_layers": sorted(set(energy) - set(kept))},
        )  # fmt: skip
    layers = []
    for layer, train_dirs in sorted(subspaces[CHANGE].items()):
        if layer not in subspaces[CHANGE_UNRELATED]:
            continue
        row: dict[str, Any] = {"layer": layer}
        if layer in planted:
            v = planted[layer]
            row["v_in_change_k8"] = float((train_dirs[:, :8].T @ v).norm())
            row["v_in_change_k16"] = float((train_dirs.T @ v).norm())
        cos = principal_cosines(train_dirs[:, :8], subspaces[CHANGE_UNRELATED][layer][:, :8])
        row["train_vs_unrelated_k8_mean_cos"] = sum(cos) / len(cos)
        layers.append(row)
    report = {"k": k, "seconds": round(time.perf_counter() - started, 1), "layers": layers}
    (folder / "truths.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
