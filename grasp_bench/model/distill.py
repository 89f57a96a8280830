"""Distillation over a restricted vocabulary, and teacher-forced measurements of a model.

The implicit-factor task trains students on a teacher's next-token distributions restricted to
a few tokens (digits, comma, space) and renormalised: no other token is ever a target, so
nothing a student learns there can spell the teacher's trait. These helpers are shared by the
task builder (teacher samples and targets), the trainer (the ``distill`` objective) and the
measurement stage (log-probabilities, trait mass and residual projections, teacher-forced).

The restricted logits are the final hidden state times the LM head's rows of the restricted
tokens only, so a step never pays for the full vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from grasp_bench.model.hooks import causal_lm

RESTRICTED_CHARS = "0123456789, "


def restricted_token_ids(tokenizer: Any, chars: str = RESTRICTED_CHARS) -> list[int]:
    """One token id per character; a character the tokenizer does not keep whole is an error."""
    ids = []
    for ch in chars:
        enc = tokenizer(ch, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise ValueError(f"restricted vocabulary: {ch!r} is {len(enc)} tokens, not one")
        ids.append(enc[0])
    if len(set(ids)) != len(ids):
        raise ValueError("restricted vocabulary: two characters share a token")
    return ids


def restricted_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    vocab: torch.Tensor,
) -> torch.Tensor:
    """Logits over ``vocab`` at ``positions`` (B x P indices into each row): the decoder's last
    hidden state at those positions times the LM head's rows of ``vocab`` (B x P x |vocab|).
    Forward hooks on the decoder layers (a method's) fire as in a full forward."""
    lm = causal_lm(model)
    hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask)[0]
    picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    head = lm.get_output_embeddings()
    weight = head.weight[vocab]
    bias = head.bias[vocab] if getattr(head, "bias", None) is not None else None
    return F.linear(picked.to(weight.dtype), weight, bias).float()


def restricted_kl(
    student_logits: torch.Tensor, teacher_logp: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over positions of KL(teacher || student), both renormalised over the restricted
    vocabulary (``teacher_logp`` is already log-softmaxed over it)."""
    student_logp = F.log_softmax(student_logits.float(), dim=-1)
    kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
    if mask is None:
        return kl.mean()
    return (kl * mask).sum() / mask.sum().clamp(min=1)


@dataclass
class Encoded:
    """Prompt and continuation token ids of one row, kept apart for teacher forcing."""

    prompt: list[int]
    answer: list[int]


def chat_prompt_ids(tokenizer: Any, question: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def right_padded(
    rows: list[Encoded], pad_id: int, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids, attention mask and the answer positions' predicting indices (B x A, where A is the
    longest answer; rows with shorter answers repeat their last index, masked by the caller).
    Position ``i`` of the returned index predicts answer token ``i``."""
    seqs = [r.prompt + r.answer for r in rows]
    width = width or max(len(s) for s in seqs)
    n_ans = max(len(r.answer) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    pos = torch.zeros((len(rows), n_ans), dtype=torch.long)
    for b, (r, s) in enumerate(zip(rows, seqs, strict=True)):
        ids[b, : len(s)] = torch.tensor(s)
        mask[b, : len(s)] = 1
        idx = [len(r.prompt) - 1 + i for i in range(len(r.answer))]
        idx += [idx[-1]] * (n_ans - len(idx))
        pos[b] = torch.tensor(idx)
    return ids, mask, pos


def distill_batches(
    encoded: list[Any], pad_id: int, batch_size: int = 16
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Distillation sequences (prompt + restricted sample) as right-padded batches: ids,
    attention, and every real token but the first (the first token's stream is a fixed
    attention sink, orders of magnitude larger than the rest)."""
    for start in range(0, len(encoded), batch_size):
        ids, mask, _ = right_padded(encoded[start : start + batch_size], pad_id)
        counted = mask.bool()
        counted[:, 0] = False
        yield ids, mask, counted


def answer_mask(rows: list[Encoded]) -> torch.Tensor:
    n_ans = max(len(r.answer) for r in rows)
    m = torch.zeros((len(rows), n_ans))
    for b, r in enumerate(rows):
        m[b, : len(r.answer)] = 1
    return m


class _OnlyVocab:
    """A logits processor that leaves only the restricted vocabulary (and so never ends early)."""

    def __init__(self, vocab: list[int]):
        self.vocab = torch.tensor(vocab)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        masked = torch.full_like(scores, float("-inf"))
        v = self.vocab.to(scores.device)
        masked[:, v] = scores[:, v]
        return masked


@torch.no_grad()
def sample_restricted(
    model: Any,
    prompts: list[list[int]],
    vocab: list[int],
    length: int,
    temperature: float,
    seed: int,
    pad_id: int,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``length`` tokens per prompt from the model's restricted, renormalised
    distribution (``generate`` with a KV cache, prompts left-padded); returns the sampled token
    ids (N x length) and the restricted log-probabilities at temperature 1 at every position
    (N x length x |vocab|): the distillation targets."""
    from transformers import LogitsProcessorList

    lm = causal_lm(model)
    dev = next(lm.parameters()).device
    vocab_t = torch.tensor(vocab)
    torch.manual_seed(seed)
    tokens, logps = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for b, p in enumerate(chunk):
            ids[b, width - len(p) :] = torch.tensor(p)
            mask[b, width - len(p) :] = 1
        sample = temperature > 0
        out = model.generate(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            max_new_tokens=length,
            min_new_tokens=length,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_k=0 if sample else None,
            top_p=None,
            logits_processor=LogitsProcessorList([_OnlyVocab(vocab)]),
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=pad_id,
        )
        raw = torch.stack(out.logits, 1).float().cpu()[..., vocab_t]
        logps.append(F.log_softmax(raw, -1))
        tokens.append(out.sequences[:, width:].cpu())
    return torch.cat(tokens), torch.cat(logps)


@dataclass
class Measured:
    """Teacher-forced readings of one model on one set of (prompt, answer) rows."""

    answer_logprob: torch.Tensor  # (N,) sum of log p(answer token) over the answer
    answer_tokens: torch.Tensor  # (N,) answer length
    trait_mass: torch.Tensor  # (N,) mean over the first positions of p(trait first tokens)
    projection: torch.Tensor  # (N, n_layers) mean residual . v per layer (position 0 excluded)


@torch.no_grad()
def measure(
    model: Any,
    rows: list[Encoded],
    pad_id: int,
    trait_tokens: list[int],
    directions: dict[int, torch.Tensor],
    first_positions: int = 4,
    batch_size: int = 16,
) -> Measured:
    """One teacher-forced pass per batch: the answer's log-probability, the probability mass on
    the trait's first tokens over the answer's first positions, and the mean residual stream
    after each layer projected on that layer's direction (unit ``v``; layers without one are 0)."""
    lm = causal_lm(model)
    n_layers = lm.config.num_hidden_layers
    dev = next(lm.parameters()).device
    trait = torch.tensor(trait_tokens, dtype=torch.long)
    lp, nt, tm, pj = [], [], [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        ids, mask, pos = right_padded(chunk, pad_id)
        out = lm.get_decoder()(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            output_hidden_states=bool(directions),  # every layer only where a direction reads it
        )
        # the LM head on the answer's predicting positions only (a third of the sequence)
        picked = out[0].gather(1, pos.to(dev).unsqueeze(-1).expand(-1, -1, out[0].shape[-1]))
        at = F.log_softmax(lm.get_output_embeddings()(picked).float(), -1).cpu()
        amask = answer_mask(chunk)
        targets = torch.full(amask.shape, pad_id, dtype=torch.long)
        for b, r in enumerate(chunk):
            targets[b, : len(r.answer)] = torch.tensor(r.answer)
        tok_lp = at.gather(2, targets.unsqueeze(-1)).squeeze(-1) * amask
        lp.append(tok_lp.sum(1))
        nt.append(amask.sum(1))
        k = min(first_positions, at.shape[1])
        mass = at[:, :k].exp()[..., trait].sum(-1)
        first = amask[:, :k]
        tm.append((mass * first).sum(1) / first.sum(1).clamp(min=1))
        keep = mask.clone().float()
        keep[:, 0] = 0  # position 0 (the first token) carries a huge, input-independent norm
        proj = torch.zeros((len(chunk), n_layers))
        for layer, v in directions.items():
            h = out.hidden_states[layer + 1].float().cpu()
            dots = h @ v.float().reshape(-1)
            proj[:, layer] = (dots * keep).sum(1) / keep.sum(1)
        pj.append(proj)
    return Measured(torch.cat(lp), torch.cat(nt), torch.cat(tm), torch.cat(pj))


@torch.no_grad()
def restricted_kl_per_row(
    model: Any,
    rows: list[Encoded],
    teacher_logp: torch.Tensor,
    vocab: list[int],
    pad_id: int,
    batch_size: int = 32,
) -> torch.Tensor:
    """KL(teacher || model) per row, mean over its positions (held-out task fit)."""
    vocab_t = torch.tensor(vocab)
    dev = next(causal_lm(model).parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        ids, mask, pos = right_padded(chunk, pad_id)
        logits = restricted_logits(model, ids.to(dev), mask.to(dev), pos.to(dev), vocab_t)
        t = teacher_logp[start : start + batch_size]
        s = F.log_softmax(logits.cpu(), -1)
        out.append((t.exp() * (t - s)).sum(-1).mean(1))
    return torch.cat(out)
