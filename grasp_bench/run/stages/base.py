"""What every stage of a run shares: the targets (a method at a seed), the data stage's output,
the state the stages hand on, and the interface each stage implements."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from grasp_bench.core.config import LoadedExperiment
from grasp_bench.core.rundir import METHOD_CARD, RunDir
from grasp_bench.data.taskspec import TaskSpec
from grasp_bench.train.methods import Recipe

console = Console(stderr=True)


@dataclass
class Target:
    """One thing that is generated from: a method at a seed."""

    name: str
    recipe: Recipe
    seed: int
    adapter: Path | None = None


@dataclass
class RunData:
    run: RunDir
    model: str
    train_rows: list[dict[str, Any]]
    control_rows: list[dict[str, Any]]
    eval_prompts: list[dict[str, Any]]
    data_hash: str
    files: dict[str, Path]  # the user's data files, resolved (``_own_data_files``)
    training_data: str  # what the methods train on, as the manifest and report say it


@dataclass
class RunState:
    """What the stages of one run hand on: the experiment, its recipes and task, and each
    finished stage's output (the data stage sets ``data``, the train stage ``targets``, ...)."""

    exp: LoadedExperiment
    recipes: list[Recipe]
    spec: TaskSpec
    progress: bool = True
    data: RunData | None = None
    targets: list[Target] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    backends: dict[str, str] = field(default_factory=dict)  # target -> what generated it
    generate_hash: str = ""  # the generate stage's identity, an input of the score stage
    table: Any = None  # the report's table (pandas)
    paths: dict[str, Path] = field(default_factory=dict)  # the report's files

    @property
    def run(self) -> RunDir:
        if self.data is None:
            raise RuntimeError("the data stage has not run")
        return self.data.run


class RunStage(ABC):
    """One stage of a run. It writes into its own folder of the run directory (named by
    ``name``, every path built by ``RunDir``), records the inputs it was made from in the
    folder's ``manifest.json`` (a rerun whose inputs match skips it; partial work under the
    same inputs is kept), and hands its output on through the ``RunState``. A run stopped
    ``until`` a stage name stops after the first stage that ``covers`` it."""

    name: ClassVar[str]
    covers: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def run(self, state: RunState) -> None:
        """Make (or resume) the stage's output and put it on ``state``."""


def adapter_identity(adapter: Path | None) -> dict[str, Any]:
    """Identity of a trained adapter: its method card (changes whenever it is retrained)."""

    if adapter is None:
        return {}
    card = adapter / METHOD_CARD
    return json.loads(card.read_text()) if card.exists() else {}
