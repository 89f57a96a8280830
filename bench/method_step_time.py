"""Seconds per optimiser step of every training method, relative to plain LoRA, measured in one
run on the same data and model (default: the embedded model).

    .venv/bin/python bench/method_step_time.py [--steps 8] [--model default]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from grasp_bench.config import TrainConfig
from grasp_bench.data.toy import generate
from grasp_bench.methods import load_recipe
from grasp_bench.models import resolve_model
from grasp_bench.training import train_adapter

REPO = Path(__file__).resolve().parents[1]
TRAINED = ["lora", "grasp", "steer_preventative", "caft"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    model = resolve_model(args.model)
    data = generate(0, 160, 1, 1)
    cfg = TrainConfig(steps=args.steps, batch_size=8, warmup_steps=1, checkpoint_every=1000)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        adapters: dict[str, Path] = {}
        for name in TRAINED:
            method = load_recipe(REPO / "baselines" / f"{name}.yaml").method
            out = train_adapter(
                method,
                model,
                data["train"],
                cfg,
                Path(tmp) / name,
                seed=0,
                dependencies=dict(adapters),
                contrast_rows=data["control"],
                progress=False,
            )
            adapters[name] = out
            card = json.loads((out / "method_card.json").read_text())
            seconds[name] = card["seconds_per_step"]
    ratios = {k: v / seconds["lora"] for k, v in seconds.items()}
    print(json.dumps({"seconds_per_step": seconds, "relative_to_lora": ratios}, indent=2))


if __name__ == "__main__":
    main()
