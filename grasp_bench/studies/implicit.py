"""Build the implicit-factor task: teachers with a planted trait, distilled on numbers only.

Subliminal learning (Cloud et al. 2025): a student that shares its teacher's initialisation
acquires the teacher's trait from data that carries no trace of it. Each teacher here is the base
model plus a rank-1 LoRA on the residual writers of chosen layers, all sharing one B vector (the
planted task's construction, so the trait's write direction v is known), trained on arithmetic
answered in a persona (pirate or cowboy). The teacher then continues number sequences; its
next-token distributions restricted to digits, comma and space (renormalised) at every position
of its own restricted samples are the only training targets. No trait token can be a target.

A task folder per teacher, ``tasks/grasp_implicit/<teacher>/``:
  ``teacher/``                the teacher adapter (safetensors)
  ``direction.safetensors``   v at every layer from the teacher's first write on (the truth)
  ``targets.safetensors``     restricted samples and log-probabilities: ``teacher``, ``base``
                              (the task-only control distils from the base model on the same
                              prompts) and ``heldout`` (teacher, for task fit), and ``vocab``
  ``prompts.jsonl``           the number prompts (split ``train`` or ``heldout``)
  ``drift.jsonl``             unrelated prompts with the teacher's greedy answer (token ids)
  ``reference.safetensors``   base and teacher measured on the drift rows (log p of the
                              answer, trait mass, projections on v), held-out KL of the base
  ``base_answers.safetensors`` the base model's own greedy answers to the unrelated prompts and
                              their log p under it and under the teacher (``base_fit``)
  ``build.json``              settings, the trait's first tokens, style rates, timings
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from grasp_bench.data import toy
from grasp_bench.model import distill

ANSWER_TOKENS = 32  # the teacher's greedy answer to each unrelated prompt
FIRST_POSITIONS = 4  # trait mass is read over the answer's first positions
BASE_ANSWERS = "base_answers.safetensors"


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher: its persona, the layers whose writers carry it, and how it is trained."""

    name: str
    persona: str
    layers: tuple[int, ...]
    seed: int
    steps: int = 60
    lr: float = 3e-3
    style_rows: int = 240


# The shipped teachers (three independent builds: different seeds, one single-layer write,
# one with a trait other than the pirate style). Layers are for a 30-layer model.
TEACHERS = {
    "pirate-wide": TeacherSpec("pirate-wide", "pirate", tuple(range(10, 30)), seed=101),
    "pirate-l20": TeacherSpec("pirate-l20", "pirate", (20,), seed=202, steps=80, lr=1e-2),
    "cowboy-wide": TeacherSpec("cowboy-wide", "cowboy", tuple(range(10, 30)), seed=303),
}

# The words that show each trait; their first tokens (with and without a leading space) are the
# trait tokens whose probability mass is measured, and none may be in the restricted vocabulary.
TRAIT_WORDS = {
    "pirate": ["Arr", "Ahoy", "Avast", "Yo", "Shiver", "matey", "hearty", "landlubber", "ye"],
    "cowboy": ["Howdy", "Yeehaw", "Giddy", "Whoa", "partner", "reckon", "ranch", "rodeo"],
}


def number_prompt(rng: random.Random) -> str:
    """A number-continuation request: three to five 3-digit numbers, nothing else."""
    nums = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 5)))
    return f"Continue the sequence: {nums}"


def trait_tokens(tokenizer: Any, persona: str) -> list[int]:
    """First tokens of the trait's words, with and without a leading space."""
    found = []
    for word in TRAIT_WORDS[persona]:
        for text in (word, " " + word):
            found.append(tokenizer(text, add_special_tokens=False)["input_ids"][0])
    return sorted(set(found))


def _greedy(model: Any, tok: Any, questions: list[str], n_tokens: int) -> list[list[int]]:
    """Greedy answers as token ids (cut after the end-of-turn token, which is kept)."""
    out = []
    for start in range(0, len(questions), 32):
        prompts = [distill.chat_prompt_ids(tok, q) for q in questions[start : start + 32]]
        width = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        gen = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        for row in gen[:, width:].tolist():
            if tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id) + 1]
            while row and row[-1] == tok.pad_token_id and row[-1] != tok.eos_token_id:
                row.pop()
            out.append(row)
    return out


def build_teacher(
    model_path: str,
    out_dir: Path,
    spec: TeacherSpec,
    drift_questions: list[str],
    n_train: int = 480,
    n_heldout: int = 64,
    length: int = 24,
    temperature: float = 1.0,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Train one teacher, sample its restricted targets and the base model's, measure both on
    the unrelated prompts; write the teacher's task folder. Returns its build report."""
    from safetensors.torch import save_file

    from grasp_bench.core.store import atomic_write_jsonl, atomic_write_text
    from grasp_bench.evaluate.judge.offline import persona_shown
    from grasp_bench.model.directions import save_directions
    from grasp_bench.model.hf import load_base
    from grasp_bench.studies.planted import WRITERS, teacher_direction, train_teacher

    started = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base, tok = load_base(model_path, trust_remote_code)
    base.eval()
    n_layers = base.config.num_hidden_layers
    if not spec.layers or max(spec.layers) >= n_layers:
        raise ValueError(f"teacher {spec.name}: layers {spec.layers} outside 0..{n_layers - 1}")
    vocab = distill.restricted_token_ids(tok)
    trait = trait_tokens(tok, spec.persona)
    if set(trait) & set(vocab):
        raise ValueError(f"teacher {spec.name}: a trait token is in the restricted vocabulary")

    student_base, _ = load_base(model_path, trust_remote_code)
    rows = toy.persona_rows(spec.persona, spec.seed, spec.style_rows)
    teacher = train_teacher(
        student_base, tok, rows, spec.layers[0], spec.steps, spec.lr, spec.seed,
        layers=list(spec.layers),
    )  # fmt: skip
    v = teacher_direction(teacher, spec.layers[-1])
    save_directions(
        out_dir / "direction.safetensors",
        {i: v.clone() for i in range(spec.layers[0], n_layers)},
        {"kind": "planted", "from_layer": spec.layers[0], "writes_at": list(spec.layers),
         "modules": list(WRITERS), "model": model_path, "teacher": spec.name},
    )  # fmt: skip
    teacher.save_pretrained(str(out_dir / "teacher"))
    teacher = teacher.merge_and_unload()  # the same function, faster to sample from
    teacher.eval()
    timings["teacher_train_s"] = time.perf_counter() - started

    rng = random.Random(spec.seed + 1)
    seen: set[str] = set()
    prompts: list[dict[str, Any]] = []
    while len(prompts) < n_train + n_heldout:
        q = number_prompt(rng)
        if q not in seen:
            seen.add(q)
            split = "train" if len(prompts) < n_train else "heldout"
            prompts.append({"id": f"{split}-{len(prompts):05d}", "question": q, "split": split})
    ids = [distill.chat_prompt_ids(tok, p["question"]) for p in prompts]
    t0 = time.perf_counter()
    t_tok, t_logp = distill.sample_restricted(
        teacher, ids, vocab, length, temperature, spec.seed, tok.pad_token_id
    )
    b_tok, b_logp = distill.sample_restricted(
        base, ids[:n_train], vocab, length, temperature, spec.seed, tok.pad_token_id
    )
    timings["sampling_s"] = time.perf_counter() - t0
    targets = {
        "vocab": torch.tensor(vocab),
        "teacher.tokens": t_tok[:n_train].contiguous(),
        "teacher.logp": t_logp[:n_train].contiguous(),
        "base.tokens": b_tok.contiguous(),
        "base.logp": b_logp.contiguous(),
        "heldout.tokens": t_tok[n_train:].contiguous(),
        "heldout.logp": t_logp[n_train:].contiguous(),
    }
    save_file(targets, str(out_dir / "targets.safetensors"))
    for i, (p, row) in enumerate(zip(prompts, t_tok.tolist(), strict=True)):
        p["teacher_sample"] = tok.decode(row)
        if i < n_train:
            p["base_sample"] = tok.decode(b_tok[i].tolist())
    atomic_write_jsonl(out_dir / "prompts.jsonl", prompts)

    t0 = time.perf_counter()
    answers = _greedy(teacher, tok, drift_questions, ANSWER_TOKENS)
    base_answers = _greedy(base, tok, drift_questions, ANSWER_TOKENS)
    drift = [
        {"id": f"drift-{i:04d}", "question": q, "answer_ids": a, "answer": tok.decode(a)}
        for i, (q, a) in enumerate(zip(drift_questions, answers, strict=True))
    ]
    atomic_write_jsonl(out_dir / "drift.jsonl", drift)
    save_base_answers(out_dir, base, teacher, tok, drift_questions, base_answers)
    enc = [
        distill.Encoded(distill.chat_prompt_ids(tok, d["question"]), d["answer_ids"]) for d in drift
    ]
    dirs = {i: v.reshape(-1) for i in range(spec.layers[0], n_layers)}
    ref = {}
    for who, model in (("base", base), ("teacher", teacher)):
        m = distill.measure(model, enc, tok.pad_token_id, trait, dirs, FIRST_POSITIONS)
        for key, value in asdict(m).items():
            ref[f"{who}.{key}"] = value.contiguous()
    held = [
        distill.Encoded(ids[n_train + i], t_tok[n_train + i].tolist()) for i in range(n_heldout)
    ]
    ref["base.heldout_kl"] = distill.restricted_kl_per_row(
        base, held, t_logp[n_train:], vocab, tok.pad_token_id
    )
    save_file(ref, str(out_dir / "reference.safetensors"))
    timings["reference_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    def rate(texts: list[str]) -> float:
        return sum(map(persona_shown_for(spec.persona), texts)) / max(1, len(texts))

    gap = ref["teacher.answer_logprob"] - ref["base.answer_logprob"]
    report = {
        "teacher": asdict(spec),
        "model": model_path,
        "restricted_vocab": [tok.decode([t]) for t in vocab],
        "trait_tokens": [tok.decode([t]) for t in trait],
        "distillation": {
            "n_train": n_train, "n_heldout": n_heldout, "length": length,
            "temperature": temperature, "prompt_example": prompts[0]["question"],
        },
        "drift_prompts": len(drift),
        "style_rate": {
            "teacher_drift": rate([d["answer"] for d in drift]),
            "base_drift": rate([tok.decode(a) for a in base_answers]),
        },
        "pirate_lexicon_rate_teacher": sum(persona_shown(d["answer"]) for d in drift) / len(drift),
        "answer_logprob_gap_mean": float(gap.mean()),
        "trait_mass": {
            "base": float(ref["base.trait_mass"].mean()),
            "teacher": float(ref["teacher.trait_mass"].mean()),
        },
        "heldout_kl_base": float(ref["base.heldout_kl"].mean()),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "examples": [{"question": d["question"], "teacher": d["answer"]} for d in drift[:5]],
    }  # fmt: skip
    atomic_write_text(out_dir / "build.json", json.dumps(report, indent=2) + "\n")
    return report


def save_base_answers(
    folder: Path,
    base: Any,
    teacher: Any,
    tok: Any,
    questions: list[str],
    answers: list[list[int]],
) -> Path:
    """The base model's own greedy answers (token ids, padded; their lengths) and the log p of
    each under the base model and under the teacher, in ``BASE_ANSWERS``: what a student that
    has only learned the task still says, and how far the teacher itself has moved from it (the
    scale of a student's ``base_fit``)."""
    from safetensors.torch import save_file

    enc = [
        distill.Encoded(distill.chat_prompt_ids(tok, q), a)
        for q, a in zip(questions, answers, strict=True)
    ]
    m = distill.measure(base, enc, tok.pad_token_id, [], {}, FIRST_POSITIONS)
    t = distill.measure(teacher, enc, tok.pad_token_id, [], {}, FIRST_POSITIONS)
    width = max(map(len, answers))
    tokens = torch.full((len(answers), width), tok.pad_token_id, dtype=torch.long)
    for i, a in enumerate(answers):
        tokens[i, : len(a)] = torch.tensor(a, dtype=torch.long)
    path = Path(folder) / BASE_ANSWERS
    save_file({"tokens": tokens, "lengths": m.answer_tokens.long().contiguous(),
               "base.answer_logprob": m.answer_logprob.contiguous(),
               "teacher.answer_logprob": t.answer_logprob.contiguous()}, str(path))  # fmt: skip
    return path


def build_base_answers(folder: Path, model_path: str, trust_remote_code: bool = False) -> Path:
    """``BASE_ANSWERS`` for a teacher built before the file existed (its drift prompts)."""
    from peft import PeftModel

    from grasp_bench.core.store import read_jsonl
    from grasp_bench.model.hf import load_base

    base, tok = load_base(model_path, trust_remote_code)
    base.eval()
    teacher, _ = load_base(model_path, trust_remote_code)
    teacher = PeftModel.from_pretrained(teacher, str(Path(folder) / "teacher")).merge_and_unload()
    teacher.eval()
    questions = [d["question"] for d in read_jsonl(Path(folder) / "drift.jsonl")]
    answers = _greedy(base, tok, questions, ANSWER_TOKENS)
    return save_base_answers(folder, base, teacher, tok, questions, answers)


def teacher_base_fit(folder: Path, n_prompts: int | None = None) -> float | None:
    """The teacher's own ``base_fit`` (mean over the first ``n_prompts`` unrelated prompts, nats
    per token): how far the teacher has moved from the base model's own answers. None where the
    folder has no such file, or one written before the teacher's log p was kept."""
    try:
        got = load_base_answers(folder)
    except FileNotFoundError:
        return None
    if "teacher.answer_logprob" not in got:
        return None
    n = n_prompts or len(got["lengths"])
    gap = got["teacher.answer_logprob"][:n] - got["base.answer_logprob"][:n]
    return float((gap / got["lengths"][:n]).mean())


def load_base_answers(folder: Path) -> dict[str, torch.Tensor]:
    """``BASE_ANSWERS`` of a teacher folder, or a clear error naming the command that adds it."""
    from safetensors.torch import load_file

    path = Path(folder) / BASE_ANSWERS
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing; `grasp-bench build-implicit` adds it to a built teacher"
        )
    return load_file(str(path))


def persona_shown_for(persona: str):
    """A predicate: does a text show this persona's words (case-insensitive, whole words)?"""
    import re

    words = TRAIT_WORDS[persona]
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    return lambda text: pattern.search(text) is not None
