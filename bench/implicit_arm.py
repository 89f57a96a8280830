"""One arm of the implicit-factor task (issue #25, item 6): the batched distillation step set
against the one-sequence-at-a-time loop it replaced, and the teacher-forced metrics of a
trained student, so that train + metrics of one arm can be estimated on this machine.

Two LoRA sessions of the experiment's recipe are opened on the task's training rows with the
same seed (so the same batches, from the same weights): one takes the trainer's own batched
step (``TrainingSession.step``), the other the same step with each of the batch's sequences
forwarded and backpropagated alone (losses divided by the batch size, gradients accumulated,
then the trainer's clip and optimiser step). After one untimed warm-up step each, every round
times ``--steps`` steps of each variant, the order alternating round by round; the medians of
the rounds are reported. Both must give the same loss for the same weights (all restricted
samples have the same length, so the batch's mean over positions is the mean of the
sequences' means). Then one ``measure_target`` call (the pipeline's ``TaskSpec.evaluate``) on
the batched session's adapter: the metrics part of an arm.

    python -m bench.implicit_arm [--steps 6] [--rounds 3] [--no-measure]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.common import REPO, Target, machine, median, table, targets_table, write_result

EXPERIMENT = REPO / "experiments" / "implicit-pirate-wide.yaml"
RECIPE = REPO / "baselines" / "lora.yaml"
VARIANTS = ("batched", "one_at_a_time")
SPEEDUP_TARGET = 1.5  # batched over one sequence at a time
ARM_TARGET_S = 180.0  # train + metrics of one arm on 2 cores (issue #25, item 6)
LOSS_TOLERANCE = 1e-4  # relative, same weights


def one_at_a_time_step(session: Any, step: int) -> float:
    """``session.step(step)`` with each sequence of the batch forwarded and backpropagated alone:
    each loss divided by the batch size, gradients accumulated, then the clip and optimiser step
    of ``TrainingSession._update``; returns the mean of the sequences' losses."""
    from grasp_bench.train.trainer import lr_at

    for group in session.optimizer.param_groups:
        group["lr"] = lr_at(step, session.cfg)
    indices = session.batches[step]
    total = 0.0
    for i in indices:
        loss = session.distill.loss(session.model, [i], session.pad_id, session.plan.device)[0]
        loss = loss / len(indices)
        loss.backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(session.params, 1.0)
    session.optimizer.step()
    session.optimizer.zero_grad(set_to_none=True)
    session.method.after_step(session.model, session.ctx)
    return total


def relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


@torch.no_grad()
def loss_gap(data: Any, model: Any, indices: list[int], pad_id: int, device: str = "cpu") -> dict:
    """The batched loss of ``indices`` and the mean of their one-sequence losses, same weights."""
    batched = data.loss(model, indices, pad_id, device)[0].item()
    alone = sum(data.loss(model, [i], pad_id, device)[0].item() for i in indices) / len(indices)
    return {
        "batched": batched,
        "one_at_a_time": alone,
        "relative_difference": relative_difference(batched, alone),
    }


def interleaved_steps(
    variants: dict[str, Callable[[int], float]], steps: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per step of each variant per round, and every loss (warm-up first). Step 0 is
    each variant's untimed warm-up; round ``r`` then times steps ``1 + r*steps`` onwards of
    each variant in turn, the order rotating, so both take the same batches."""
    names = list(variants)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    losses: dict[str, list[float]] = {n: [variants[n](0)] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        first = 1 + r * steps
        for name in order:
            t = time.perf_counter()
            losses[name] += [variants[name](k) for k in range(first, first + steps)]
            seconds[name].append((time.perf_counter() - t) / steps)
    return seconds, losses


def arm_targets(
    batched_s: float, alone_s: float, measure_s: float | None, recipe_steps: int
) -> tuple[float | None, list[Target]]:
    """The estimated arm (recipe steps at the batched step time, plus the metrics) and the
    issue's two targets; without a measurement the arm is not estimated."""
    arm = None if measure_s is None else recipe_steps * batched_s + measure_s
    return arm, [
        Target(
            "implicit distill step: batched speed-up over one sequence at a time",
            alone_s / batched_s,
            SPEEDUP_TARGET,
            note="median s/step, interleaved rounds, same batches",
        ),
        Target(
            "implicit arm (train + metrics), estimated",
            arm,
            ARM_TARGET_S,
            higher_is_better=False,
            unit="s",
            note=f"{recipe_steps} steps x batched s/step + one measure_target",
        ),
    ]


def needed_steps(steps: int, rounds: int) -> int:
    """Batches a session must have: the warm-up step and every timed one."""
    return 1 + steps * rounds


def open_session(method: Any, model: str, rows: list[dict], cfg: Any, out: Path) -> Any:
    from grasp_bench.train.trainer import TrainingSession

    session = TrainingSession(method, model, rows, cfg, out, seed=0)
    if session.objective != "distill":
        raise RuntimeError(f"the implicit task's rows trained as {session.objective}, not distill")
    session.start()
    return session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--steps", type=int, default=6, help="Timed steps per variant per round.")
    ap.add_argument("--rounds", type=int, default=3, help="Rounds; medians are reported.")
    ap.add_argument(
        "--measure",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Time one measure_target call on the trained adapter.",
    )
    a = ap.parse_args()
    from grasp_bench.core.config import load_experiment
    from grasp_bench.data.tasks import build_task
    from grasp_bench.data.taskspec import get_task
    from grasp_bench.model.models import resolve_model
    from grasp_bench.train.methods import load_recipe

    model = resolve_model(a.model)
    exp = load_experiment(EXPERIMENT)
    d, train_cfg = exp.config.data, exp.config.train
    td = build_task(exp.config.task, d.seed, d.n_train, d.n_eval_task, d.n_eval_drift)
    need = needed_steps(a.steps, a.rounds)
    cfg = train_cfg if train_cfg.steps >= need else train_cfg.model_copy(update={"steps": need})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sessions, setup_s = {}, {}
        for name in VARIANTS:
            method = load_recipe(RECIPE).method
            t = time.perf_counter()
            sessions[name] = open_session(method, model, td.train, cfg, tmp / name)
            setup_s[name] = time.perf_counter() - t
        print(f"sessions open (the first in {setup_s['batched']:.0f} s); timing steps", flush=True)
        batched = sessions["batched"]
        lengths = sorted({len(e.answer) for e in batched.distill.encoded})
        seconds, losses = interleaved_steps(
            {
                "batched": batched.step,
                "one_at_a_time": lambda k: one_at_a_time_step(sessions["one_at_a_time"], k),
            },
            a.steps,
            a.rounds,
        )
        # the warm-up step: both sessions had the same weights and batch
        warm_up = relative_difference(losses["batched"][0], losses["one_at_a_time"][0])
        # and trained weights, with no step between the two losses
        gap = loss_gap(batched.distill, batched.model, batched.batches[1], batched.pad_id)
        del sessions["one_at_a_time"]
        measure_s, records = None, None
        if a.measure:
            adapter = tmp / "adapter"
            batched.model.save_pretrained(adapter, safe_serialization=True)
            print(f"steps timed: {seconds}; measuring the adapter", flush=True)
            spec = get_task(exp.config.task)
            t = time.perf_counter()
            records, _ = spec.evaluate(
                model, "lora-s0", str(adapter), batched.method, td.eval_prompts, False
            )
            measure_s = time.perf_counter() - t
    med = {k: median(v) for k, v in seconds.items()}
    arm, targets = arm_targets(med["batched"], med["one_at_a_time"], measure_s, train_cfg.steps)
    largest = max(warm_up, gap["relative_difference"])
    report = {
        "machine": machine(),
        "model": model,
        "experiment": str(EXPERIMENT.relative_to(REPO)),
        "recipe": str(RECIPE.relative_to(REPO)),
        "batch_size": cfg.batch_size,
        "recipe_steps": train_cfg.steps,
        "steps_per_round": a.steps,
        "rounds": a.rounds,
        "answer_lengths": lengths,
        "seconds_per_step": seconds,
        "median_s_per_step": med,
        "speedup": med["one_at_a_time"] / med["batched"],
        "losses": losses,
        "loss_check": {
            "warm_up_relative_difference": warm_up,
            "trained_weights": gap,
            "largest_relative_difference": largest,
            "tolerance": LOSS_TOLERANCE,
            "ok": largest <= LOSS_TOLERANCE,
        },
        "setup_s": setup_s,
        "measure_s": measure_s,
        "measure_records": None if records is None else len(records),
        "estimated_arm_s": arm,
        "targets": targets,
    }
    m = report["machine"]
    label = "embedded model" if a.model == "default" else f"model {Path(model).name}"
    same = "one length" if len(lengths) == 1 else f"lengths {lengths}: means differ by design"
    lines = [
        f"# Implicit-factor arm: batched distillation vs one sequence at a time ({m['cpu']},"
        f" {m['cores']} cores; {label}, float32, lora recipe, batch {cfg.batch_size};"
        f" {a.rounds} interleaved rounds of {a.steps} steps after a warm-up step)",
        "",
        *table(
            ["", "median s/step", "x batched"],
            [
                ["batched (trainer)", med["batched"], 1.0],
                ["one sequence at a time", med["one_at_a_time"], report["speedup"]],
            ],
        ),
        "",
        f"Same loss for the same weights: largest relative difference {largest:.2g}"
        f" (tolerance {LOSS_TOLERANCE:g}; restricted samples of {same}).",
        "",
        (
            f"Metrics (one measure_target, {len(td.eval_prompts)} prompts): {measure_s:.1f} s."
            f" Estimated arm: {train_cfg.steps} x {med['batched']:.2f} s + {measure_s:.1f} s ="
            f" {arm:.0f} s; opening a session (model load, targets) adds"
            f" {setup_s['batched']:.0f} s."
            if measure_s is not None
            else "Metrics not measured (--no-measure)."
        ),
        "",
        *targets_table(targets),
    ]
    write_result("implicit_arm", report, lines)
    print("\n".join(lines))
    if largest > LOSS_TOLERANCE:
        raise SystemExit(f"batched and one-at-a-time losses differ by {largest:.2g} (relative)")


if __name__ == "__main__":
    main()
