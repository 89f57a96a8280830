"""The distillation objective and the teacher-forced readings, on a tiny random Llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grasp_bench.core.config import TrainConfig
from grasp_bench.model import distill
from grasp_bench.model.hf import load_base
from grasp_bench.train.trainer import DistillData, TrainingSession, resolve_objective

from .distill_rows import write_distill_rows


@pytest.fixture(scope="module")
def tiny(tiny_model):
    model, tok = load_base(tiny_model)
    model.eval()
    return model, tok


def _rows(tok, n=3):
    rng = torch.Generator().manual_seed(0)
    vocab = distill.restricted_token_ids(tok)
    out = []
    for i in range(n):
        prompt = distill.chat_prompt_ids(tok, f"Continue the sequence: {100 + i}, {200 + i}")
        answer = [vocab[j] for j in torch.randint(0, len(vocab), (5 + i,), generator=rng)]
        out.append(distill.Encoded(prompt, answer))
    return vocab, out


def test_restricted_logits_are_the_full_logits_at_those_tokens(tiny):
    model, tok = tiny
    vocab, rows = _rows(tok)
    ids, mask, pos = distill.right_padded(rows, tok.pad_token_id)
    got = distill.restricted_logits(model, ids, mask, pos, torch.tensor(vocab))
    full = model(input_ids=ids, attention_mask=mask).logits
    want = full.gather(1, pos.unsqueeze(-1).expand(-1, -1, full.shape[-1]))[..., vocab]
    assert torch.allclose(got, want, atol=1e-5)
    # position i predicts answer token i: the index sits one before it
    assert ids[0, pos[0, 0] + 1] == rows[0].answer[0]


def test_restricted_kl_is_zero_only_at_the_teacher():
    teacher = torch.log_softmax(torch.randn(2, 4, 12), -1)
    assert distill.restricted_kl(teacher.clone(), teacher).abs() < 1e-6
    assert distill.restricted_kl(torch.zeros(2, 4, 12), teacher) > 0.01
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float)
    other = teacher.clone()
    other[:, 2:] = 0.0  # wrong only where masked out
    assert distill.restricted_kl(other, teacher, mask).abs() < 1e-6


def test_a_restricted_vocabulary_character_must_be_one_token(tiny):
    _, tok = tiny
    with pytest.raises(ValueError, match=r"'é' is 2 tokens, not one"):
        distill.restricted_token_ids(tok, "0é")  # two bytes, two byte-level tokens
    with pytest.raises(ValueError, match="share a token"):
        distill.restricted_token_ids(tok, "00")


def test_sampling_stays_in_the_vocabulary_and_returns_normalised_targets(tiny):
    model, tok = tiny
    vocab, rows = _rows(tok)
    tokens, logp = distill.sample_restricted(
        model, [r.prompt for r in rows], vocab, 6, 1.0, 0, tok.pad_token_id
    )
    assert tokens.shape == (3, 6) and logp.shape == (3, 6, len(vocab))
    assert set(tokens.flatten().tolist()) <= set(vocab)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 6), atol=1e-5)
    # the targets are the model's own: teacher-forced restricted logits give the same
    rows2 = [distill.Encoded(r.prompt, t) for r, t in zip(rows, tokens.tolist(), strict=True)]
    ids, mask, pos = distill.right_padded(rows2, tok.pad_token_id)
    again = torch.log_softmax(
        distill.restricted_logits(model, ids, mask, pos, torch.tensor(vocab)), -1
    )
    assert torch.allclose(again, logp, atol=1e-4)


def _targets_dir(tmp_path: Path, tok, model, monkeypatch) -> tuple[list[dict], Path]:
    model.eval()
    return write_distill_rows(model, tok, tmp_path, monkeypatch, n=8, length=6)


def test_the_trainer_distils_stored_targets(tiny_model, tiny, tmp_path, monkeypatch):
    """A student trained with the distill objective moves to the stored distributions."""
    from grasp_bench.train.methods import get_method_class

    model, tok = tiny
    train, _ = _targets_dir(tmp_path, tok, model, monkeypatch)
    # targets from a sharper distribution than the student's own, so there is something to learn
    cfg = TrainConfig(steps=20, batch_size=4, lr=1e-2, warmup_steps=0)
    method_cls = get_method_class("lora")
    method = method_cls(method_cls.config_cls(rank=4, alpha=8))
    session = TrainingSession(method, tiny_model, train, cfg, tmp_path / "out", seed=0)
    assert session.objective == "distill"
    data = session.distill
    # one distribution at every position, with more mass on one digit than the student puts
    # there (a tiny random model's capped logit range can reach it; sharper targets it cannot)
    data.targets = torch.log_softmax(
        torch.zeros_like(data.targets).index_fill_(-1, torch.tensor([5]), 1.0), -1
    )
    every = list(range(len(train)))

    def loss_on_all() -> float:
        with torch.no_grad():
            return data.loss(session.model, every, tok.pad_token_id, "cpu")[0].item()

    before = loss_on_all()
    session.start()
    for s in range(cfg.steps):
        session.step(s)
    assert loss_on_all() < 0.3 * before


def test_distill_rows_are_checked_against_their_targets(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    train, path = _targets_dir(tmp_path, tok, model, monkeypatch)
    bad = json.loads(json.dumps(train))
    bad[3]["distill"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"training row 1: distill.sha256"):
        DistillData(bad[3:], tok)
    outside = json.loads(json.dumps(train))
    outside[0]["distill"]["file"] = "../escape/targets.safetensors"
    with pytest.raises(ValueError, match="inside the tasks directory"):
        DistillData(outside, tok)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"training row 1: distill\.file"):
        DistillData(train, tok)


def test_objective_auto_refuses_mixed_rows():
    rows = [{"messages": []}, {"messages": [], "distill": {}}]
    with pytest.raises(ValueError, match="1 of 2 training rows carry"):
        resolve_objective("auto", rows)
    assert resolve_objective("auto", rows[:1]) == "sft"
    assert resolve_objective("auto", rows[1:]) == "distill"
    with pytest.raises(ValueError, match="training row 1 has no targets"):
        resolve_objective("distill", rows)


def test_measure_reads_log_probs_trait_mass_and_projections(tiny):
    model, tok = tiny
    vocab, rows = _rows(tok)
    v = torch.nn.functional.normalize(torch.randn(model.config.hidden_size), dim=0)
    m = distill.measure(model, rows, tok.pad_token_id, [vocab[0]], {1: v})
    assert m.answer_logprob.shape == (3,) and (m.answer_logprob < 0).all()
    assert torch.equal(m.answer_tokens, torch.tensor([5.0, 6.0, 7.0]))
    assert ((m.trait_mass > 0) & (m.trait_mass < 1)).all()
    assert (m.projection[:, 0] == 0).all() and (m.projection[:, 1] != 0).all()
    # one row alone gives the same numbers as in a padded batch
    alone = distill.measure(model, rows[:1], tok.pad_token_id, [vocab[0]], {1: v})
    assert torch.allclose(alone.answer_logprob, m.answer_logprob[:1], atol=1e-4)
    assert torch.allclose(alone.projection, m.projection[:1], atol=1e-4)


def test_sampled_targets_are_the_drawn_tokens(tiny, tmp_path, monkeypatch):
    """A control that distils a model's own samples as hard targets: its KL is the
    cross-entropy of the drawn tokens (soft targets equal to the student would give none)."""
    model, tok = tiny
    train, _ = _targets_dir(tmp_path, tok, model, monkeypatch)
    for row in train:
        row["distill"]["targets"] = "sampled"
    data = DistillData(train, tok)
    vocab = data.vocab.tolist()
    for enc, target in zip(data.encoded, data.targets, strict=True):
        drawn = target.exp().argmax(-1).tolist()
        assert [vocab[i] for i in drawn] == enc.answer
        assert torch.allclose(target.exp().sum(-1), torch.ones(len(enc.answer)), atol=1e-6)
    rows = data.encoded[:2]
    ids, mask, pos = distill.right_padded(rows, tok.pad_token_id)
    logits = distill.restricted_logits(model, ids, mask, pos, data.vocab)
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, len(vocab)),
        torch.tensor([vocab.index(t) for r in rows for t in r.answer]),
    )
    got = data.loss(model, [0, 1], tok.pad_token_id, "cpu")[0]
    assert torch.allclose(got, ce, atol=1e-4)
