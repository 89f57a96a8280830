"""Does the trainer's GPU path work, and what does it buy? A few minutes on one GPU.

Times optimiser steps of plain LoRA and of GRASP (weight projection after every step, and the
residual-gradient variant) on a randomly initialised model of SmolLM2-135M's shape, on CUDA in
bf16 (LoRA weights float32, as the trainer keeps them) and on the CPU in float32, with the
same batch of random token ids; then times HF ``generate``. Warm-up steps are excluded and the
median is reported. Needs only torch, transformers, peft and this repository (no install, no
download, no tokenizer); without a GPU it runs the CPU part and says that it skipped the rest.
Where the project's own dependencies (pydantic, ...) are importable it then runs the real
``train_adapter`` on the device for every method path, a crash-and-resume and QLoRA, on a tiny
model it makes, and records each path's outcome instead of stopping at the first failure.

    python bench/gpu_check.py                                # on the GPU machine
    python bench/gpu_check.py --layers 4 --seq-len 64 --cpu-steps 2   # a quick CPU-only proof

Writes ``$OUT/gpu_check.json`` (``OUT`` defaults to bench/results).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository as it is: no pip install on the GPU machine
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from grasp_bench.model.hooks import project_gradient_hooks  # noqa: E402  (torch only)
from grasp_bench.model.modules import layer_of, lora_targets, role_of  # noqa: E402  (pure Python)

VARIANTS = ("lora", "grasp", "grasp_residual_grad")


def smollm2_135m_shape(layers: int) -> LlamaConfig:
    """SmolLM2-135M's architecture (its weights are not needed: timing is shape-bound)."""
    return LlamaConfig(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=layers,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def random_directions(d_model: int, layers: int, seed: int = 0) -> dict[int, torch.Tensor]:
    """One orthonormal direction per layer (GRASP's ``reading: random`` control; the cost of
    the projection does not depend on which direction it is)."""
    gen = torch.Generator().manual_seed(seed)
    return {
        layer: torch.linalg.qr(torch.randn(d_model, 1, generator=gen))[0] for layer in range(layers)
    }


class InlineGrasp:
    """grasp_bench.train.methods.grasp's weight projection, for a machine without pydantic: writers'
    B <- (I - V V^T) B, readers' A <- A (I - V V^T), after every step."""

    name = "inline copy of grasp_bench.train.methods.grasp (pydantic not installed)"

    def __init__(self, project: str, directions: dict[int, torch.Tensor]):
        self.project = project
        self._directions = directions
        self._targets: list[tuple[torch.Tensor, torch.Tensor, str, torch.Tensor]] = []

    def before_training(self, model: Any) -> None:
        if self.project == "residual_grad":
            return
        for name, module in model.named_modules():
            if not hasattr(module, "lora_A") or "default" not in module.lora_A:
                continue
            role = role_of(name, "llama")
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            v = self._directions[layer_of(name)].to(a.device, a.dtype)
            self._targets.append((a, b, role, torch.eye(v.shape[0], device=a.device) - v @ v.T))
        self.after_step()

    def training_hooks(self, model: Any) -> list[Any]:
        if self.project != "residual_grad":
            return []
        return project_gradient_hooks(model, self._directions)

    @torch.no_grad()
    def after_step(self) -> None:
        for a, b, role, p in self._targets:
            if role == "writer":
                b.copy_(p @ b)
            else:
                a.copy_(a @ p)


def grasp_method(project: str, device: str, model: Any, layers: int):
    """The project's GRASP method (``reading: random``) set up as the trainer sets it up:
    before_training with the model on the CPU, then model and method state moved to
    ``device``; or the inline copy where the project's config layer (pydantic) is missing.
    Returns (after_step, hooks, implementation, directions)."""
    try:
        from grasp_bench.train.methods.base import TrainContext
        from grasp_bench.train.methods.grasp import Grasp, GraspConfig
        from grasp_bench.train.trainer import move_method_state
    except ImportError:
        dirs = random_directions(model.config.hidden_size, layers)
        inline = InlineGrasp(project, {k: v.to(device) for k, v in dirs.items()})
        model.to(device)
        inline.before_training(model)
        return inline.after_step, inline.training_hooks(model), InlineGrasp.name, dirs
    method = Grasp(GraspConfig(reading="random", project=project, k=1))
    out = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        ctx = TrainContext(base_model="random", model_type="llama", seed=0, out_dir=out)
        method.before_training(model, ctx)  # model still on the CPU, as in train_adapter
    finally:
        shutil.rmtree(out, ignore_errors=True)
    model.to(device)
    move_method_state(method, device)
    hooks = method.training_hooks(model, ctx)
    impl = "grasp_bench.train.methods.grasp.Grasp"
    return (lambda: method.after_step(model, ctx)), hooks, impl, method._directions


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_training(
    variant: str,
    base: LlamaForCausalLM,
    device: str,
    dtype: torch.dtype,
    batch: dict[str, torch.Tensor],
    steps: int,
    warmup: int,
    checkpointing: bool,
) -> dict[str, Any]:
    """Median seconds per optimiser step of one variant, with the warm-up steps left out."""
    torch.manual_seed(0)
    model = copy.deepcopy(base).to(dtype)  # the same random weights for every variant
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=lora_targets("llama", "all"), task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)  # LoRA weights float32 (peft's autocast_adapter_dtype)
    after_step, hooks, impl, dirs = (lambda: None), [], None, {}
    if variant == "lora":
        model.to(device)
    else:
        project = "residual_grad" if variant == "grasp_residual_grad" else "both"
        layers = base.config.num_hidden_layers
        after_step, hooks, impl, dirs = grasp_method(project, device, model, layers)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batch = {k: v.to(device) for k, v in batch.items()}
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model.train()
    times, losses = [], []
    for step in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        after_step()
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    for h in hooks:
        h.remove()
    result: dict[str, Any] = {
        "median_s_per_step": statistics.median(times),
        "min_s_per_step": min(times),
        "steps_timed": len(times),
        "warmup_steps": warmup,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "finite": all(math.isfinite(x) for x in losses),
        "trainable_dtypes": sorted({str(p.dtype) for p in params}),
        "base_dtype": str(dtype),
    }
    if impl:
        result["grasp_impl"] = impl
        result["projection_residual"] = projection_residual(model, dirs)
    if device == "cuda":
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del model, optimizer
    return result


@torch.no_grad()
def projection_residual(model: Any, dirs: dict[int, torch.Tensor]) -> float | None:
    """Largest ||V^T B|| / ||B|| over writers: 0 up to float error where GRASP projects the
    weights (residual_grad leaves them alone, so there it is just small)."""
    worst = None
    for name, module in model.named_modules():
        if not hasattr(module, "lora_B") or "default" not in module.lora_B:
            continue
        if role_of(name, "llama") != "writer":
            continue
        b = module.lora_B["default"].weight.float()
        v = dirs[layer_of(name)].to(b.device)
        if b.norm() == 0:
            continue
        r = float((v.T @ b).norm() / b.norm())
        worst = r if worst is None else max(worst, r)
    return worst


@torch.no_grad()
def time_generate(
    base: LlamaForCausalLM,
    device: str,
    dtype: torch.dtype,
    prompts: torch.Tensor,
    new_tokens: int,
) -> dict[str, Any]:
    """Greedy HF generate of ``new_tokens`` for a batch of prompts (after one warm-up call)."""
    model = copy.deepcopy(base).to(device=device, dtype=dtype).eval()
    prompts = prompts.to(device)
    mask = torch.ones_like(prompts)
    kwargs = {"attention_mask": mask, "do_sample": False, "pad_token_id": 0}
    model.generate(prompts, max_new_tokens=2, min_new_tokens=2, **kwargs)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    out = model.generate(prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    _sync(device)
    seconds = time.perf_counter() - t0
    made = (out.shape[1] - prompts.shape[1]) * prompts.shape[0]
    return {
        "seconds": seconds,
        "batch": prompts.shape[0],
        "prompt_tokens": prompts.shape[1],
        "new_tokens_per_sequence": out.shape[1] - prompts.shape[1],
        "new_tokens_per_s": made / seconds,
        "dtype": str(dtype),
    }


def machine() -> dict[str, Any]:
    import peft
    import transformers

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        found.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30,
            bf16_supported=torch.cuda.is_bf16_supported(),
            cudnn=torch.backends.cudnn.version(),
        )
    return found


# -- the project's own trainer, end to end on the GPU (needs the project's dependencies) -------

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_chat_model(out: Path, rows: list[dict[str, Any]]) -> Path:
    """A 2-layer random Llama with a small BPE tokenizer and a ChatML template, made here (the
    unit tests' fixture, without pytest): what train_adapter needs, in seconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [m["content"] for r in rows for m in r["messages"]]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
    )
    fast.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.bos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


SMOKE = {  # label -> (method, recipe overrides, train overrides)
    "lora": ("lora", {}, {}),  # the LM head on labelled positions only (the default)
    "lora_logits_all": ("lora", {}, {"logits": "all"}),  # every position: same losses
    "lora_checkpointing_rslora": ("lora", {"use_rslora": True}, {"gradient_checkpointing": True}),
    "grasp_weights": ("grasp", {"reading": "random"}, {}),
    "grasp_residual_grad": ("grasp", {"reading": "random", "project": "residual_grad"}, {}),
    "grasp_supervised": ("grasp", {"reading": "supervised", "reading_examples": 8}, {}),
    "caft_supervised": ("caft", {"contrast_examples": 8}, {"gradient_checkpointing": True}),
    "steer_preventative": ("steer_preventative", {"contrast_examples": 8}, {}),
    "qlora": ("lora", {}, {"load_in_4bit": True}),
}


def trainer_smoke(device: str) -> dict[str, Any]:
    """``train_adapter`` itself on ``device`` for each method path (a tiny model, 4 steps,
    checkpoint at 2), a resume after a crash, and QLoRA; an error is recorded, not raised."""
    try:
        from grasp_bench.core.config import TrainConfig
        from grasp_bench.data.toy import generate
        from grasp_bench.train.methods import load_recipe
        from grasp_bench.train.trainer import train_adapter
    except ImportError as exc:
        return {"skipped": f"the project's dependencies are not all installed: {exc}"}
    found: dict[str, Any] = {}
    data = generate(0, 64, 1, 1)
    cfg = TrainConfig(
        steps=4, batch_size=4, warmup_steps=1, checkpoint_every=2, max_length=64, device=device
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = str(tiny_chat_model(Path(tmp) / "tiny", data["train"] + data["control"]))

        def run(label: str, method: Any, train: Any) -> Path:
            return train_adapter(
                method,
                model,
                data["train"],
                train,
                Path(tmp) / label,
                seed=0,
                contrast_rows=data["control"],
                progress=False,
            )

        for label, (name, overrides, train_overrides) in SMOKE.items():
            if train_overrides.get("load_in_4bit") and device != "cuda":
                found[label] = {"skipped": "4-bit needs CUDA"}
                continue
            try:
                method = load_recipe(REPO / "baselines" / f"{name}.yaml", overrides=overrides)
                out = run(label, method.method, cfg.model_copy(update=train_overrides))
                card = json.loads((out / "method_card.json").read_text())
                found[label] = {
                    "ok": True,
                    "hardware": card["hardware"],
                    "final_losses": card["final_losses"],
                    "seconds_per_step": card["seconds_per_step"],
                }
            except Exception as exc:  # recorded: one broken path must not hide the others
                found[label] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        found["resume"] = _resume_matches(run, load_recipe, cfg)
    return found


def _resume_matches(run: Any, load_recipe: Any, cfg: Any) -> dict[str, Any]:
    """Crash after step 3, resume from the step-2 checkpoint: the adapter must match an
    uninterrupted run's (checkpoints are CPU safetensors; RNG states restored)."""
    from safetensors.torch import load_file

    class Crash(RuntimeError):
        pass

    try:
        full = run("resume_full", load_recipe(REPO / "baselines" / "lora.yaml").method, cfg)
        crashing = load_recipe(REPO / "baselines" / "lora.yaml").method
        calls = {"n": 0}

        def after_step(model: Any, ctx: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                raise Crash

        crashing.after_step = after_step
        with contextlib.suppress(Crash):
            run("resume_cut", crashing, cfg)
        resumed = run("resume_cut", load_recipe(REPO / "baselines" / "lora.yaml").method, cfg)
        a = load_file(full / "adapter_model.safetensors")
        b = load_file(resumed / "adapter_model.safetensors")
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        card = json.loads((resumed / "method_card.json").read_text())
        return {"ok": diff < 1e-4, "max_abs_diff": diff, "resumed_from": card["resumed_from_step"]}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=30, help="decoder layers (SmolLM2-135M: 30)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--gpu-steps", type=int, default=10, help="timed steps per variant on GPU")
    ap.add_argument("--cpu-steps", type=int, default=3, help="timed steps per variant on CPU")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--gen-tokens", type=int, default=64, help="new tokens (GPU; CPU: 1/8)")
    ap.add_argument("--skip-cpu", action="store_true", help="GPU part only")
    ap.add_argument("--skip-smoke", action="store_true", help="no train_adapter smoke run")
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    config = smollm2_135m_shape(args.layers)
    torch.manual_seed(0)
    base = LlamaForCausalLM(config)  # float32, on the CPU; deep-copied per run (ties kept)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, config.vocab_size, (args.batch_size, args.seq_len), generator=gen)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    prompts = ids[:, :32]

    runs: list[tuple[str, torch.dtype, int, int]] = []
    skipped: list[str] = []
    if torch.cuda.is_available():
        gpu_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        runs.append(("cuda", gpu_dtype, args.gpu_steps, args.gen_tokens))
    else:
        skipped.append("cuda: torch sees no CUDA GPU, GPU timings skipped")
        print("no CUDA GPU visible: running the CPU part only", flush=True)
    if args.skip_cpu:
        skipped.append("cpu: --skip-cpu")
    else:
        runs.append(("cpu", torch.float32, args.cpu_steps, max(1, args.gen_tokens // 8)))

    report: dict[str, Any] = {
        "machine": machine(),
        "model": {
            "shape": "SmolLM2-135M (random init)",
            "layers": args.layers,
            "parameters": sum(p.numel() for p in base.parameters()),
        },
        "args": vars(args),
        "skipped": skipped,
        "train": {},
        "generate": {},
    }
    started = time.perf_counter()
    for device, dtype, steps, gen_tokens in runs:
        report["train"][device] = {}
        for variant in VARIANTS:
            res = time_training(
                variant,
                base,
                device,
                dtype,
                batch,
                steps,
                args.warmup,
                args.gradient_checkpointing,
            )
            report["train"][device][variant] = res
            mem = f", peak {res['peak_gpu_memory_gib']:.2f} GiB" if device == "cuda" else ""
            print(
                f"train {device:4s} {variant:20s} {res['median_s_per_step'] * 1000:9.1f} ms/step"
                f" (median of {res['steps_timed']}){mem}, loss {res['last_loss']:.3f}",
                flush=True,
            )
        res = time_generate(base, device, dtype, prompts, gen_tokens)
        report["generate"][device] = res
        print(
            f"generate {device:4s} {res['new_tokens_per_s']:9.1f} new tokens/s "
            f"({res['batch']} x {res['new_tokens_per_sequence']} in {res['seconds']:.2f}s)",
            flush=True,
        )
        if device == "cuda":
            torch.cuda.empty_cache()
    if {"cuda", "cpu"} <= report["train"].keys():
        report["cpu_over_gpu_step_time"] = {
            v: report["train"]["cpu"][v]["median_s_per_step"]
            / report["train"]["cuda"][v]["median_s_per_step"]
            for v in VARIANTS
        }
        print("CPU/GPU step-time ratio:", json.dumps(report["cpu_over_gpu_step_time"]))
    for variants in report["train"].values():
        lora = variants["lora"]["median_s_per_step"]
        for v in VARIANTS:
            variants[v]["relative_to_lora"] = variants[v]["median_s_per_step"] / lora
    if not args.skip_smoke:
        smoke_device = "cuda" if torch.cuda.is_available() else "cpu"
        report["trainer_smoke"] = {"device": smoke_device, **trainer_smoke(smoke_device)}
        if "skipped" in report["trainer_smoke"]:
            print("trainer smoke skipped:", report["trainer_smoke"]["skipped"], flush=True)
        for label, res in report["trainer_smoke"].items():
            if isinstance(res, dict):
                state = "ok" if res.get("ok") else res.get("skipped") or res.get("error")
                print(f"trainer {smoke_device} {label:26s} {state}", flush=True)
    report["seconds_total"] = time.perf_counter() - started
    out_dir = Path(os.environ.get("OUT") or REPO / "bench" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gpu_check.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
