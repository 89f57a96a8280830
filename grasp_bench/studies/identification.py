"""Does a reading of a naive LoRA run find the spurious direction? Every GRASP reading of one
trained adapter against a reference direction (the supervised difference of means, or a planted
truth), per layer, with a random direction of the same shape as the chance level.

Run by ``grasp-bench directions RUN_DIR``; no training, a few forward passes over the run's own
training answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from grasp_bench.core.rundir import RunDir, target_name
from grasp_bench.model.directions import (
    Directions,
    activation_change_directions,
    cosine_by_layer,
    diff_of_means,
    load_directions,
    random_directions,
    unsupervised_directions,
    update_shift_directions,
)

READINGS = ("svd", "shift", "activation_change", "random")


def read_all(
    base_model: str,
    adapter: Path,
    train_rows: list[dict[str, Any]],
    seed: int,
    examples: int = 64,
    trust_remote_code: bool = False,
) -> tuple[dict[str, Directions], Any]:
    """Every reading (one direction per layer) of ``adapter``, and the loaded base model."""
    from peft import PeftModel

    from grasp_bench.model.hf import load_base

    model, tok = load_base(base_model, trust_remote_code)
    model_type = model.config.model_type
    rows = train_rows[:examples]
    readings = {
        "svd": unsupervised_directions(adapter, model_type, k=1),
        "shift": update_shift_directions(model, tok, rows, adapter, model_type),
    }
    tuned = PeftModel.from_pretrained(model, str(adapter))

    def use_tuned(on: bool) -> None:
        (tuned.enable_adapter_layers if on else tuned.disable_adapter_layers)()

    readings["activation_change"] = activation_change_directions(tuned, tok, rows, use_tuned, k=1)
    tuned.disable_adapter_layers()
    layers = sorted(readings["svd"])
    readings["random"] = random_directions(model.config.hidden_size, layers, 1, seed)
    return readings, (tuned, tok)


def supervised_reference(
    model: Any, tokenizer: Any, train_rows: list, control_rows: list, n: int = 64
) -> Directions:
    """The persona/control difference of means on the base model (adapters disabled)."""
    with torch.no_grad():
        dirs, _ = diff_of_means(model, tokenizer, train_rows[:n], control_rows[:n])
    return dirs


def compare(readings: dict[str, Directions], reference: Directions) -> pd.DataFrame:
    """|cos| of each reading with the reference, per shared layer."""
    rows = [
        {"reading": name, "layer": layer, "abs_cos": round(cos, 6)}
        for name, dirs in readings.items()
        for layer, cos in cosine_by_layer(dirs, reference).items()
    ]
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per reading: mean and max |cos| over layers and the layer of the max."""
    out = []
    for name, part in table.groupby("reading", sort=False):
        best = part.loc[part["abs_cos"].idxmax()]
        out.append(
            {
                "reading": name,
                "mean_abs_cos": round(float(part["abs_cos"].mean()), 4),
                "max_abs_cos": round(float(best["abs_cos"]), 4),
                "layer_of_max": int(best["layer"]),
            }
        )
    return pd.DataFrame(out)


def identify_run(
    run_dir: Path,
    base_model: str,
    train_rows: list,
    control_rows: list,
    seed: int,
    source: str = "lora",
    truth: Path | None = None,
    trust_remote_code: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readings of the run's ``source`` adapter at ``seed`` against the truth file or the
    supervised direction; returns (per layer, summary)."""
    adapter = RunDir(Path(run_dir)).adapter(target_name(source, seed))
    if not (adapter / "adapter_model.safetensors").exists():
        raise FileNotFoundError(f"{adapter}: no trained {source} adapter at seed {seed}")
    readings, (model, tok) = read_all(
        base_model, adapter, train_rows, seed, trust_remote_code=trust_remote_code
    )
    if truth is not None:
        reference = load_directions(truth)
    else:
        reference = supervised_reference(model, tok, train_rows, control_rows)
    table = compare(readings, reference)
    return table, summarise(table)
