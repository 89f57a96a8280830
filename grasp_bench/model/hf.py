"""Hugging Face helpers every layer above needs: seeding, chat encoding, loading a base model.

They sit below the trainer, the direction finders and the generators, so none of those imports
another to reach them.
"""

from __future__ import annotations

import random
from typing import Any

import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass


def encode_chat(tokenizer: Any, messages: list[dict[str, str]], max_length: int):
    """Token ids of a conversation and labels that keep only the last assistant turn."""
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("chat template renders the prompt differently inside the conversation")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids = (p_ids + r_ids)[:max_length]
    labels = ([-100] * len(p_ids) + r_ids)[:max_length]
    return ids, labels


def load_base(
    model_path: str,
    trust_remote_code: bool = False,
    dtype: str = "float32",
    device: str = "cpu",
    load_in_4bit: bool = False,
):
    """The base model (in ``dtype``, on ``device``) and its tokenizer, with a pad token.

    ``load_in_4bit`` quantises the linear weights to 4-bit NF4 with bitsandbytes (QLoRA), with
    ``dtype`` as the compute dtype; such a model is placed on the GPU at load and cannot move.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if load_in_4bit:
        kwargs.update(
            quantization_config=_nf4_config(getattr(torch, dtype), device),
            device_map={"": torch.cuda.current_device()},
        )
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        model_path, trust_remote_code=trust_remote_code, **kwargs
    )
    if not load_in_4bit and device != "cpu":
        model.to(device)
    return model, tokenizer


def _nf4_config(compute_dtype: torch.dtype, device: str):
    """bitsandbytes' 4-bit NF4 with double quantisation, the QLoRA recipe; clear errors where
    it cannot run (bitsandbytes' 4-bit kernels need a CUDA GPU)."""
    if device != "cuda" or not torch.cuda.is_available():
        raise RuntimeError(
            f"load_in_4bit needs a CUDA GPU (bitsandbytes' 4-bit kernels); device is {device}"
            + ("" if torch.cuda.is_available() else " and torch sees no CUDA GPU")
        )
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(
            "load_in_4bit needs bitsandbytes, which is not installed: "
            "pip install -e '.[qlora]' (or pip install bitsandbytes)"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
