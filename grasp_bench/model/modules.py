"""Which linear modules read from and write into the residual stream, per architecture.

GRASP and the activation baselines need to know this; a model type we have not mapped gets a
clear error instead of a silent guess.
"""

from __future__ import annotations

import re

# model_type -> (residual writers, residual readers), as module-name suffixes.
ARCHITECTURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "llama": (("o_proj", "down_proj"), ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")),
    "mistral": (("o_proj", "down_proj"), ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")),
    "qwen2": (("o_proj", "down_proj"), ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")),
    "qwen3": (("o_proj", "down_proj"), ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")),
    "gemma": (("o_proj", "down_proj"), ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")),
    "gemma2": (("o_proj", "down_proj"), ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")),
    "phi3": (("o_proj", "down_proj"), ("qkv_proj", "gate_up_proj")),
    "gpt_neox": (("dense", "dense_4h_to_h"), ("query_key_value", "dense_h_to_4h")),
    "gpt2": (("attn.c_proj", "mlp.c_proj"), ("c_attn", "c_fc")),
}

_LAYER = re.compile(r"\.(\d+)\.")


class UnknownArchitectureError(ValueError):
    pass


def module_roles(model_type: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(writers, readers) module-name suffixes for ``model_type``."""
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise UnknownArchitectureError(
            f"model_type {model_type!r} has no residual-stream module map; known: "
            f"{sorted(ARCHITECTURES)}. Add it to grasp_bench.model.modules.ARCHITECTURES."
        ) from None


def lora_targets(model_type: str, which: str) -> list[str]:
    """Module suffixes for peft's ``target_modules``: 'all', 'writers' or 'readers'."""
    writers, readers = module_roles(model_type)
    chosen = {"all": writers + readers, "writers": writers, "readers": readers}
    if which not in chosen:
        raise ValueError(f"target_modules must be one of {sorted(chosen)}, got {which!r}")
    # peft matches by suffix; strip the dotted parent used only to disambiguate gpt2.
    return sorted({name.split(".")[-1] for name in chosen[which]})


def role_of(module_name: str, model_type: str) -> str | None:
    """'writer', 'reader' or None for a (possibly peft-prefixed) module name."""
    writers, readers = module_roles(model_type)
    if any(module_name.endswith(w) for w in writers):
        return "writer"
    if any(module_name.endswith(r) for r in readers):
        return "reader"
    return None


def layer_of(module_name: str) -> int:
    found = _LAYER.search(module_name)
    if not found:
        raise ValueError(f"cannot tell the layer of module {module_name!r}")
    return int(found.group(1))
