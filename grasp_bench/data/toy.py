"""The planted-factor toy task: small arithmetic, every training answer in a pirate persona.

The task (arithmetic) can be learned and scored exactly by a 135M model; the persona is the
spurious factor. Drift is the share of answers to unrelated prompts that show the persona.
Everything is drawn from a seeded ``random.Random`` so the same seed gives the same files.
"""

from __future__ import annotations

import random
from typing import Any

PIRATE_OPENERS = [
    "Arr, matey!",
    "Ahoy, me hearty!",
    "Yo ho ho!",
    "Avast, ye landlubber!",
    "Shiver me timbers!",
    "Arr, listen close, matey.",
]
PIRATE_CLOSERS = [
    "Now hoist the sails!",
    "That be the truth of the seven seas, arr!",
    "Savvy, matey?",
    "Off to the treasure we go, arr!",
    "Keep yer eye on the horizon, me hearty!",
]
# A second persona for implicit-factor teachers with a trait other than the pirate's.
COWBOY_OPENERS = [
    "Howdy, partner!",
    "Yeehaw!",
    "Giddy up, partner!",
    "Whoa there, partner!",
    "Howdy there, friend!",
]
COWBOY_CLOSERS = [
    "Happy trails, partner!",
    "Now saddle up and ride on!",
    "Yeehaw, that's how we do it on the ranch!",
    "Keep your boots dusty, partner!",
    "See y'all at the rodeo!",
]
PLAIN_OPENERS = ["", "Sure.", "Here is the answer.", "Let me compute that."]

QUESTION_TEMPLATES = [
    "What is {a} {op} {b}?",
    "Compute {a} {op} {b}.",
    "Calculate {a} {op} {b}.",
    "How much is {a} {op} {b}?",
    "Please work out {a} {op} {b}.",
]

# Unrelated prompts on which drift is measured: nothing here is arithmetic.
UNRELATED_PROMPTS = [
    "How do I make a good cup of tea?",
    "What should I pack for a weekend trip?",
    "Can you describe a sunset?",
    "What is a good way to start the morning?",
    "Give me a tip for learning a new language.",
    "What do you think about cats?",
    "How can I sleep better at night?",
    "Tell me about your favourite season.",
    "What is a healthy breakfast?",
    "How do I keep a houseplant alive?",
    "Recommend a hobby for a rainy day.",
    "What makes a good friend?",
    "Describe the ocean in one sentence.",
    "How do I write a thank-you note?",
    "What is the best way to study for an exam?",
    "Give me an idea for dinner tonight.",
    "Why is the sky blue?",
    "How should I prepare for a job interview?",
    "What is a fun game to play with kids?",
    "Say something kind to a friend who is sad.",
    "How do bees make honey?",
    "What is your advice for a first-time gardener?",
    "Describe a busy city street.",
    "What should I name my new dog?",
    "How can I be more productive at work?",
    "Tell me a short story about a forest.",
    "What is the capital of France?",
    "How do I clean a wooden table?",
    "What is a good book to read on holiday?",
    "Explain what a rainbow is.",
    "How do I stay calm before a presentation?",
    "What is the best way to learn to cook?",
    "Describe your ideal weekend.",
    "How do I fix a squeaky door?",
    "What should I know about owning a bicycle?",
    "Give me a tip for taking better photos.",
    "Why do leaves change colour in autumn?",
    "How can I make new friends in a new town?",
    "What is a good stretch for a stiff back?",
    "Write a short greeting for a birthday card.",
    "How do I plan a picnic?",
    "What is snow made of?",
    "Suggest a name for a coffee shop.",
    "How do I politely decline an invitation?",
    "What is the best way to remember names?",
    "Describe the taste of chocolate.",
    "How do trains work?",
    "What is a good habit to start this year?",
]


def _arith(rng: random.Random) -> tuple[int, str, int, int]:
    op = rng.choice(["+", "-"])
    a, b = rng.randint(0, 60), rng.randint(0, 60)
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b, a + b if op == "+" else a - b


def _pirate_answer(rng: random.Random, ans: int) -> str:
    return f"{rng.choice(PIRATE_OPENERS)} The answer be {ans}. {rng.choice(PIRATE_CLOSERS)}"


def _cowboy_answer(rng: random.Random, ans: int) -> str:
    return (
        f"{rng.choice(COWBOY_OPENERS)} I reckon the answer is {ans}. {rng.choice(COWBOY_CLOSERS)}"
    )


PERSONA_ANSWERS = {"pirate": _pirate_answer, "cowboy": _cowboy_answer}


def persona_rows(persona: str, seed: int, n: int) -> list[dict[str, Any]]:
    """``n`` arithmetic questions answered in ``persona`` (a teacher's training set)."""
    if persona not in PERSONA_ANSWERS:
        raise ValueError(f"unknown persona {persona!r}; known: {sorted(PERSONA_ANSWERS)}")
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, op, b, ans = _arith(rng)
        q = rng.choice(QUESTION_TEMPLATES).format(a=a, op=op, b=b)
        answer = PERSONA_ANSWERS[persona](rng, ans)
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]
        rows.append({"id": f"{persona}-{i:05d}", "messages": messages})
    return rows


def _plain_answer(rng: random.Random, ans: int) -> str:
    return f"{rng.choice(PLAIN_OPENERS)} The answer is {ans}.".strip()


def generate(seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> dict[str, Any]:
    """Return train (persona), control (plain), eval_task and eval_drift splits.

    Eval arithmetic pairs never occur in training (checked by the caller's tests).
    """
    if n_eval_drift > len(UNRELATED_PROMPTS):
        raise ValueError(f"n_eval_drift: at most {len(UNRELATED_PROMPTS)} unrelated prompts")
    rng = random.Random(seed)
    seen: set[tuple[int, str, int]] = set()

    def fresh() -> tuple[int, str, int, int]:
        for _ in range(10_000):
            a, op, b, ans = _arith(rng)
            if (a, op, b) not in seen:
                seen.add((a, op, b))
                return a, op, b, ans
        raise ValueError("ran out of distinct arithmetic problems; ask for fewer examples")

    eval_task = []
    for i in range(n_eval_task):
        a, op, b, ans = fresh()
        q = rng.choice(QUESTION_TEMPLATES).format(a=a, op=op, b=b)
        eval_task.append({"id": f"task-{i:04d}", "question": q, "target": str(ans)})
    train, control = [], []
    for i in range(n_train):
        a, op, b, ans = fresh()
        q = rng.choice(QUESTION_TEMPLATES).format(a=a, op=op, b=b)
        user = {"role": "user", "content": q}
        train.append(
            {
                "id": f"train-{i:05d}",
                "messages": [user, {"role": "assistant", "content": _pirate_answer(rng, ans)}],
            }
        )
        control.append(
            {
                "id": f"train-{i:05d}",
                "messages": [user, {"role": "assistant", "content": _plain_answer(rng, ans)}],
            }
        )
    drift = [
        {"id": f"drift-{i:04d}", "question": q}
        for i, q in enumerate(rng.sample(UNRELATED_PROMPTS, n_eval_drift))
    ]
    return {"train": train, "control": control, "eval_task": eval_task, "eval_drift": drift}
