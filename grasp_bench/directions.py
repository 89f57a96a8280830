"""Latent directions in the residual stream.

Two sources, so baselines can take either and a comparison isolates *how* a method acts from
*which* direction it acts on:

- unsupervised, from a trained LoRA adapter: the top left singular vectors of the updates
  dW = scaling * B A of the modules that write into the residual stream (per layer or pooled);
- supervised, the difference of mean activations between contrastive responses
  (persona-vector style).

Directions are saved as safetensors with their provenance in the metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

from grasp_bench.modules import layer_of, role_of

Directions = dict[int, torch.Tensor]  # layer -> (d_model, k), orthonormal columns


def adapter_updates(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """Dense LoRA updates dW (out x in) of every adapted module of a saved peft adapter."""
    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    scaling = cfg["lora_alpha"] / cfg["r"]
    tensors = load_file(adapter_dir / "adapter_model.safetensors")
    updates = {}
    for key, a in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0]
        b = tensors[key.replace(".lora_A.", ".lora_B.")]
        updates[module] = scaling * (b.double() @ a.double())
    if not updates:
        raise ValueError(f"{adapter_dir}: no LoRA A/B pairs in adapter_model.safetensors")
    return updates


def _top_left_singular(mats: list[torch.Tensor], k: int) -> torch.Tensor:
    stacked = torch.cat(mats, dim=1)
    u, _, _ = torch.linalg.svd(stacked, full_matrices=False)
    return u[:, :k].float().contiguous()


def unsupervised_directions(
    adapter_dir: Path,
    model_type: str,
    k: int = 1,
    scope: Literal["per_layer", "pooled"] = "per_layer",
    role: Literal["writer", "reader"] = "writer",
) -> Directions:
    """Top-k directions written (or read) by an adapter's updates, found without labels.

    For writers the directions live in the update's column space (what it writes); for
    readers in its row space (what it reads), hence the transpose.
    """
    per_layer: dict[int, list[torch.Tensor]] = {}
    for module, dw in adapter_updates(adapter_dir).items():
        if role_of(module, model_type) != role:
            continue
        per_layer.setdefault(layer_of(module), []).append(dw if role == "writer" else dw.T)
    if not per_layer:
        raise ValueError(f"{adapter_dir}: adapter has no residual-stream {role} modules")
    if scope == "pooled":
        pooled = _top_left_singular([m for ms in per_layer.values() for m in ms], k)
        return {layer: pooled for layer in per_layer}
    return {layer: _top_left_singular(ms, k) for layer, ms in sorted(per_layer.items())}


@torch.no_grad()
def mean_response_activations(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> Directions:
    """Mean residual stream after each decoder layer over assistant-response tokens."""
    from grasp_bench.hf import encode_chat
    from grasp_bench.hooks import ResidualCapture

    totals: dict[int, torch.Tensor] = {}
    count = 0
    with ResidualCapture(model) as capture:
        for row in rows:
            ids, labels = encode_chat(tokenizer, row["messages"], max_length=512)
            model(input_ids=torch.tensor([ids]))
            mask = torch.tensor(labels) != -100
            for layer, h in capture.outputs.items():
                s = h[0, mask].double().sum(dim=0)
                totals[layer] = totals[layer] + s if layer in totals else s
            count += int(mask.sum())
    return {layer: (t / count).float() for layer, t in totals.items()}


def diff_of_means(
    model: Any, tokenizer: Any, positive: list[dict[str, Any]], negative: list[dict[str, Any]]
) -> tuple[Directions, dict[int, float]]:
    """Persona direction per layer (unit, d x 1) and the raw difference's norm per layer.

    mean(positive responses) - mean(negative responses) of the residual stream after each
    decoder layer, the persona-vector recipe.
    """
    pos = mean_response_activations(model, tokenizer, positive)
    neg = mean_response_activations(model, tokenizer, negative)
    units, norms = {}, {}
    for layer in pos:
        diff = pos[layer] - neg[layer]
        norms[layer] = float(diff.norm())
        units[layer] = (diff / diff.norm()).unsqueeze(1)
    return units, norms


def cosine_by_layer(a: Directions, b: Directions) -> dict[int, float]:
    """|cos| between the first column of two direction sets, per shared layer."""
    out = {}
    for layer in sorted(set(a) & set(b)):
        u, v = a[layer][:, 0], b[layer][:, 0]
        out[layer] = float((u @ v).abs() / (u.norm() * v.norm()))
    return out


def save_directions(path: Path, directions: Directions, provenance: dict[str, Any]) -> None:
    from grasp_bench.store import atomic_write_bytes

    tensors = {f"layer.{layer}": v.detach().clone().contiguous() for layer, v in directions.items()}
    meta = {"provenance": json.dumps(provenance, sort_keys=True, default=str)}
    tmp = Path(path).with_suffix(".tmp.safetensors")
    save_file(tensors, str(tmp), metadata=meta)
    atomic_write_bytes(Path(path), tmp.read_bytes())
    tmp.unlink()


def load_directions(path: Path) -> Directions:
    return {int(k.split(".")[1]): v for k, v in load_file(str(path)).items()}
