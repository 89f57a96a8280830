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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

from grasp_bench.model.modules import layer_of, role_of

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
def response_batches(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], batch_size: int = 16
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The rows as right-padded batches: (input ids, attention mask, response-token mask).
    Right padding leaves every real token's position and context as in a batch of one."""
    from grasp_bench.model.hf import encode_chat

    encoded = [encode_chat(tokenizer, row["messages"], max_length=512) for row in rows]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        response = torch.zeros((len(chunk), width), dtype=torch.bool)
        for j, (row_ids, labels) in enumerate(chunk):
            ids[j, : len(row_ids)] = torch.tensor(row_ids)
            attention[j, : len(row_ids)] = 1
            response[j, : len(labels)] = torch.tensor(labels) != -100
        yield ids.to(model.device), attention.to(model.device), response.to(model.device)


def forward_hidden(model: Any, ids: torch.Tensor, attention: torch.Tensor) -> None:
    """A forward pass for its hooks only: the LM head on one position where the model allows
    it (on a small model the head over every position is a fifth of the work)."""
    import inspect

    from grasp_bench.model.hooks import causal_lm

    base = causal_lm(model)
    if "logits_to_keep" in inspect.signature(base.forward).parameters:
        model(input_ids=ids, attention_mask=attention, logits_to_keep=1)
    else:
        model(input_ids=ids, attention_mask=attention)


def mean_response_activations(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> Directions:
    """Mean residual stream after each decoder layer over assistant-response tokens."""
    from grasp_bench.model.hooks import ResidualCapture

    totals: dict[int, torch.Tensor] = {}
    count = 0
    with ResidualCapture(model) as capture:
        for ids, attention, response in response_batches(model, tokenizer, rows):
            forward_hidden(model, ids, attention)
            for layer, h in capture.outputs.items():
                s = h[response].double().sum(dim=0)
                totals[layer] = totals[layer] + s if layer in totals else s
            count += int(response.sum())
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
    from grasp_bench.core.store import atomic_write_bytes

    tensors = {f"layer.{layer}": v.detach().clone().contiguous() for layer, v in directions.items()}
    meta = {"provenance": json.dumps(provenance, sort_keys=True, default=str)}
    tmp = Path(path).with_suffix(".tmp.safetensors")
    save_file(tensors, str(tmp), metadata=meta)
    atomic_write_bytes(Path(path), tmp.read_bytes())
    tmp.unlink()


def load_directions(path: Path) -> Directions:
    return {int(k.split(".")[1]): v for k, v in load_file(str(path)).items()}


def random_directions(
    d_model: int, layers: list[int], k: int, seed: int, scope: str = "per_layer"
) -> Directions:
    """Seeded random orthonormal directions: the control that tells a projection which removes
    the factor from one that only removes capacity."""
    gen = torch.Generator().manual_seed(seed)
    draws = 1 if scope == "pooled" else len(layers)
    bases = [torch.linalg.qr(torch.randn(d_model, k, generator=gen))[0] for _ in range(draws)]
    return {layer: bases[0 if scope == "pooled" else i] for i, layer in enumerate(layers)}


@torch.no_grad()
def update_shift_directions(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], adapter_dir: Path, model_type: str
) -> Directions:
    """The update's input-independent shift: for each layer, sum over its residual writers of
    dW applied to the writer's mean input (over the rows' response tokens, ``model`` as given,
    i.e. the base model), normalised. One direction per layer."""
    from grasp_bench.model.hf import encode_chat

    # (layer, writer suffix) -> dW: adapter keys and the model's module names differ in prefix
    updates = {
        (layer_of(m), _writer(m, model_type)): dw
        for m, dw in adapter_updates(adapter_dir).items()
        if role_of(m, model_type) == "writer"
    }
    sums: dict[tuple[int, str], torch.Tensor] = {}
    count = 0
    handles = []
    mask: torch.Tensor | None = None
    for name, module in model.named_modules():
        if role_of(name, model_type) != "writer":
            continue  # (peft's base_layer children end in base_layer: not matched)
        key = (layer_of(name), _writer(name, model_type))
        if key not in updates or key in sums:
            continue
        sums[key] = torch.zeros(updates[key].shape[1], dtype=torch.float64)

        def record(_m, inputs, _out, key: tuple[int, str] = key) -> None:
            sums[key] += inputs[0][0, mask.to(inputs[0].device)].double().sum(dim=0).cpu()

        handles.append(module.register_forward_hook(record))
    try:
        for row in rows:
            ids, labels = encode_chat(tokenizer, row["messages"], max_length=512)
            mask = (torch.tensor(labels) != -100).to(model.device)
            model(input_ids=torch.tensor([ids], device=model.device))
            count += int(mask.sum())
    finally:
        for h in handles:
            h.remove()
    if set(sums) != set(updates):
        raise ValueError(f"{adapter_dir}: writers {sorted(set(updates) - set(sums))} not in model")
    per_layer: dict[int, torch.Tensor] = {}
    for (layer, _), total in sums.items():
        shift = updates[(layer, _)] @ (total / max(count, 1))
        per_layer[layer] = per_layer[layer] + shift if layer in per_layer else shift
    return {layer: (s / s.norm()).float().unsqueeze(1) for layer, s in sorted(per_layer.items())}


@torch.no_grad()
def activation_change_directions(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    use_tuned: Callable[[bool], None],
    k: int = 1,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
) -> Directions:
    """Top-k directions of the change in the residual stream, tuned minus base, over the rows'
    response tokens: eigenvectors of the uncentred second moment of the change per layer (a
    constant shift counts: it is what the fine-tune adds on every token). ``use_tuned(on)``
    switches ``model`` between the two (e.g. two peft adapters), so one copy is held.
    ``batches`` replaces the rows' chat encoding (e.g. the trainer's own batches)."""
    directions, _ = change_subspace(
        model, batches or response_batches(model, tokenizer, rows), use_tuned, k
    )
    return directions


def _residual_changes(
    model: Any,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    use_tuned: Callable[[bool], None],
) -> Iterator[dict[int, torch.Tensor]]:
    """Per batch, tuned minus base residual stream after each layer at the counted positions
    (tokens x d_model, float64)."""
    from grasp_bench.model.hooks import ResidualCapture

    for ids, attention, counted in batches:
        captured = []
        for on in (False, True):
            use_tuned(on)
            with ResidualCapture(model) as cap:
                forward_hidden(model, ids, attention)
            captured.append(cap.outputs)
        yield {
            layer: (h[counted] - captured[0][layer][counted]).double()
            for layer, h in captured[1].items()
        }


@torch.no_grad()
def change_subspace(
    model: Any,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    use_tuned: Callable[[bool], None],
    k: int,
) -> tuple[Directions, dict[int, list[float]]]:
    """Top-k principal directions (uncentred) of the tuned-minus-base residual change per layer,
    and the mean squared change along each of them per counted token (eigenvalue / tokens)."""
    moments: dict[int, torch.Tensor] = {}
    tokens = 0
    for deltas in _residual_changes(model, batches, use_tuned):
        for layer, delta in deltas.items():
            m = delta.T @ delta
            moments[layer] = moments[layer] + m if layer in moments else m
        tokens += int(next(iter(deltas.values())).shape[0])
    out, energy = {}, {}
    for layer, m in sorted(moments.items()):
        vals, vecs = torch.linalg.eigh(m)
        out[layer] = vecs[:, -k:].flip(1).float().contiguous()
        energy[layer] = [float(x) / max(tokens, 1) for x in vals[-k:].flip(0)]
    return out, energy


@torch.no_grad()
def change_energy(
    model: Any,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    use_tuned: Callable[[bool], None],
    directions: Directions,
) -> dict[int, float]:
    """Mean squared tuned-minus-base residual change inside span(V) per counted token, per layer
    of ``directions``: how far a fine-tune moved the stream along V."""
    totals = {layer: 0.0 for layer in directions}
    tokens = 0
    for deltas in _residual_changes(model, batches, use_tuned):
        for layer, v in directions.items():
            totals[layer] += float(((deltas[layer] @ v.double()) ** 2).sum())
        tokens += int(next(iter(deltas.values())).shape[0])
    return {layer: t / max(tokens, 1) for layer, t in totals.items()}


def _writer(module_name: str, model_type: str) -> str:
    from grasp_bench.model.modules import module_roles

    return next(w for w in module_roles(model_type)[0] if module_name.endswith(w))
