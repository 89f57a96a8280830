"""Forward hooks on decoder layers: read, shift or project the residual stream.

A hook on decoder layer ``l`` sees (and may replace) the residual stream *after* layer ``l``,
the stream that layer's writers write into; directions are indexed the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def causal_lm(model: Any) -> Any:
    """The transformers causal LM inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The decoder layer list of any HF causal LM (peft-wrapped or not)."""
    n = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"cannot find the {n} decoder layers of {type(model).__name__}")


def _replace_output(fn: Callable[[torch.Tensor], torch.Tensor]):
    def hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return hook


def add_vector_hooks(model: Any, vectors: dict[int, torch.Tensor]) -> list[Any]:
    """h <- h + vectors[l] after each decoder layer l in ``vectors``."""
    layers = decoder_layers(model)
    handles = []
    for layer, vec in vectors.items():

        def shift(h: torch.Tensor, vec: torch.Tensor = vec) -> torch.Tensor:
            return h + vec.to(h)

        handles.append(layers[layer].register_forward_hook(_replace_output(shift)))
    return handles


def project_out_hooks(model: Any, directions: dict[int, torch.Tensor]) -> list[Any]:
    """h <- h - V V^T h after each decoder layer l in ``directions`` (V: d x k orthonormal)."""
    layers = decoder_layers(model)
    handles = []
    for layer, v in directions.items():

        def project(h: torch.Tensor, v: torch.Tensor = v) -> torch.Tensor:
            v = v.to(h)
            return h - (h @ v) @ v.T

        handles.append(layers[layer].register_forward_hook(_replace_output(project)))
    return handles


def project_gradient_hooks(model: Any, directions: dict[int, torch.Tensor]) -> list[Any]:
    """dL/dh <- (I - V V^T) dL/dh for the residual stream after each decoder layer l in
    ``directions``; the forward pass is untouched. Everything upstream of h (this layer's
    writers, earlier layers) then learns nothing that only pays off along V at l."""
    layers = decoder_layers(model)
    handles = []
    for layer, v in directions.items():

        def attach(_module, _inputs, output, v: torch.Tensor = v) -> None:
            h = output[0] if isinstance(output, tuple) else output
            if h.requires_grad:
                vv = v.to(h)
                h.register_hook(lambda g: g - (g @ vv) @ vv.T)

        handles.append(layers[layer].register_forward_hook(attach))
    return handles


class ResidualCapture:
    """Records the residual stream after every decoder layer during a forward pass."""

    def __init__(self, model: Any):
        self.outputs: dict[int, torch.Tensor] = {}
        self._handles = []
        for i, layer in enumerate(decoder_layers(model)):

            def record(_m, _i, output, i: int = i) -> None:
                self.outputs[i] = (output[0] if isinstance(output, tuple) else output).detach()

            self._handles.append(layer.register_forward_hook(record))

    def __enter__(self) -> ResidualCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()


def remove(handles: list[Any]) -> None:
    for h in handles:
        h.remove()
