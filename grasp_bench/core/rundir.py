"""Where everything of a run lives, in one place: the pipeline writes and every reader (the CLI,
submit, the identification report) reads through these paths, so the layout changes here only.

    runs/<name>/
      experiment.json        marker: the config path and the snapshot's name
      experiment.yaml        the experiment as it ran (paths absolute)
      recipes/<label>.yaml   each method's recipe with its overrides applied
      data/                  train.jsonl, control.jsonl, eval.jsonl (a stage)
      train/<target>/        one stage per method and seed: adapter/, directions, checkpoints
      generate/<target>.jsonl
      score/scores.jsonl     (and the local judge server's log)
      report/                results.{md,csv,json}, plots, direction and identification tables
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# names inside a training stage's folder (train/<target>/); the trainer writes them
ADAPTER = "adapter"
CHECKPOINT = "checkpoint"
METHOD_CARD = "method_card.json"  # inside the adapter folder
DIRECTIONS = "directions.safetensors"
_TARGET = re.compile(r"^(?P<label>.+)-s(?P<seed>\d+)$")


def target_name(label: str, seed: int) -> str:
    """A trained model's name inside a run: the method's label and its seed (``lora-s0``)."""
    return f"{label}-s{int(seed)}"


def parse_target(name: str) -> tuple[str, int]:
    """``target_name`` read back: ``"grasp-k4-s12"`` -> ``("grasp-k4", 12)``."""
    found = _TARGET.match(name)
    if not found:
        raise ValueError(f"{name!r} is not a target name (<label>-s<seed>)")
    return found["label"], int(found["seed"])


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def of(cls, output_dir: str | Path, name: str) -> RunDir:
        return cls(Path(output_dir) / name)

    def __truediv__(self, part: str) -> Path:
        return self.root / part

    marker = property(lambda self: self.root / "experiment.json")
    snapshot = property(lambda self: self.root / "experiment.yaml")
    recipes = property(lambda self: self.root / "recipes")
    data = property(lambda self: self.root / "data")
    train = property(lambda self: self.root / "train")
    generate = property(lambda self: self.root / "generate")
    score = property(lambda self: self.root / "score")
    report = property(lambda self: self.root / "report")
    train_rows = property(lambda self: self.data / "train.jsonl")
    control_rows = property(lambda self: self.data / "control.jsonl")
    eval_prompts = property(lambda self: self.data / "eval.jsonl")
    scores = property(lambda self: self.score / "scores.jsonl")
    judge_server_log = property(lambda self: self.score / "judge-server.log")
    direction_cosines = property(lambda self: self.report / "direction_cosines.csv")
    results = property(lambda self: self.report / "results.json")

    def recipe(self, label: str) -> Path:
        return self.recipes / f"{label}.yaml"

    def adapter(self, target: str) -> Path:
        return self.train / target / ADAPTER

    def method_card(self, target: str) -> Path:
        return self.adapter(target) / METHOD_CARD

    def directions(self, target: str) -> Path:
        return self.train / target / DIRECTIONS

    def identification(self, seed: int) -> Path:
        """The identification table of one seed's readings (``grasp-bench directions``)."""
        return self.report / f"identification-s{int(seed)}.csv"

    def completions(self, target: str) -> Path:
        return self.generate / f"{target}.jsonl"

    def measured(self, target: str) -> Path:
        """A target's teacher-forced records (tasks measured without generation)."""
        return self.score / f"{target}.jsonl"

    def measured_layers(self, target: str) -> Path:
        return self.score / f"{target}.layers.jsonl"

    def __str__(self) -> str:
        return str(self.root)
