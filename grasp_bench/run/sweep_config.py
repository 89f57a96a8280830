"""The sweep file: its schema (tasks x models x methods x seeds, with per-task and per-model
overrides of the experiment's sections) and its loader, whose errors name the file, line and
field as the experiment loader's do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grasp_bench.core.config import (
    SAFE_LABEL,
    DataConfig,
    GenerationConfig,
    JudgeConfig,
    MethodRef,
    TrainConfig,
)
from grasp_bench.core.names import safe_name
from grasp_bench.core.yaml_loader import (
    ConfigError,
    Loc,
    StrictModel,
    format_loc,
    import_plugin,
    line_for,
    load_yaml,
    validate_as,
)

SAFE = safe_name(48)  # sweep names and model labels


class TaskEntry(StrictModel):
    """A task of the grid; ``data`` and ``train`` override the sweep's shared blocks for it
    (only the keys written here)."""

    name: str = Field(description="A registered task.")
    data: DataConfig | None = Field(None, description="Keys of data that differ for this task.")
    train: TrainConfig | None = Field(None, description="Keys of train that differ for it.")

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        from grasp_bench.data.taskspec import registered_tasks

        if v not in registered_tasks():
            raise ValueError(f"unknown task {v!r}; registered: {registered_tasks()}")
        return v


class ModelEntry(StrictModel):
    """A model of the grid. Its reference is kept as written: planning a sweep never resolves,
    downloads or converts a model."""

    id: str = Field(description="'default' (embedded), an HF model id or a path.")
    label: str | None = Field(
        None, description="Short name in run ids (default: the id made safe for a directory)."
    )
    tasks: list[str] | None = Field(
        None, description="Only these tasks of the sweep (default: every task)."
    )
    train: TrainConfig | None = Field(
        None, description="Keys of train that differ for this model (applied after the task's)."
    )

    @field_validator("label")
    @classmethod
    def _safe_label(cls, v: str | None) -> str | None:
        if v is not None and not SAFE.fullmatch(v):
            raise ValueError("must be letters, digits, '.', '_' or '-', at most 48 characters")
        return v

    @property
    def run_label(self) -> str:
        from grasp_bench.leaderboard.submit import slug

        return self.label or slug(self.id)[:48]


class SweepConfig(StrictModel):
    """A grid of experiments: every task x every model (unless a model names its tasks), each
    with every method and seed, and the shared data, train, generation and judge blocks of an
    experiment YAML."""

    name: str = Field(description="Sweep name; runs go to <output_dir>/<name>/<run id>/.")
    plugins: list[str] = Field(
        default_factory=list, description="Modules that register methods, tasks or judges."
    )
    tasks: list[TaskEntry] = Field(min_length=1, description="Task names or task entries.")
    models: list[ModelEntry] = Field(min_length=1, description="Model ids or model entries.")
    methods: list[str | MethodRef] = Field(min_length=1, description="Methods of every run.")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Who scores.")
    output_dir: str = Field(
        "runs", description="Where the sweep's directory goes (relative: to the working directory)."
    )
    trust_remote_code: bool = Field(False, description="Only for models you trust.")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not SAFE.fullmatch(v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (it names a directory)")
        return v

    @field_validator("plugins")
    @classmethod
    def _import(cls, v: list[str]) -> list[str]:
        # declared (and so validated) before tasks: a plugin may register a task
        for module in v:
            import_plugin(module)
        return v

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_shorthand(cls, v: Any) -> Any:
        return [{"name": t} if isinstance(t, str) else t for t in v] if isinstance(v, list) else v

    @field_validator("models", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        return [{"id": m} if isinstance(m, str) else m for m in v] if isinstance(v, list) else v

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v


class LoadedSweep(BaseModel):
    """A sweep config plus where it came from (for error messages, recipes and data files)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    config: SweepConfig
    path: Path
    lines: dict[Loc, int]

    def error(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{line_for(loc, self.lines)} {format_loc(loc)}: {message}")


def load_sweep(path: Path) -> LoadedSweep:
    """Read and check a sweep file; errors name the file, the line and the field."""
    path = Path(path)
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1 <root>: expected a mapping of sweep settings")
    if "model" in data or "task" in data:  # an experiment file given by mistake
        key = "model" if "model" in data else "task"
        raise ConfigError(
            f"{path}:{lines.get((key,), 1)} {key}: a sweep lists tasks: and models: (this looks"
            " like an experiment file; run it with `grasp-bench run`)"
        )
    sweep = LoadedSweep(config=validate_as(SweepConfig, data, path, lines), path=path, lines=lines)
    cfg = sweep.config
    for field, values in (
        ("tasks", [t.name for t in cfg.tasks]),
        ("models", [m.id for m in cfg.models]),
        ("seeds", cfg.seeds),
        ("methods", [m if isinstance(m, str) else m.name for m in cfg.methods]),
    ):
        for i, value in enumerate(values):
            if value in values[:i]:
                raise sweep.error((field, i), f"{value!r} is listed twice")
            if field == "methods" and not SAFE_LABEL.fullmatch(str(value)):
                raise sweep.error((field, i), f"{value!r} must be letters, digits, '.', '_' or '-'")
    names = {t.name for t in cfg.tasks}
    for i, model in enumerate(cfg.models):
        for j, task in enumerate(model.tasks or []):
            if task not in names:
                raise sweep.error(
                    ("models", i, "tasks", j), f"{task!r} is not one of the sweep's tasks"
                )
    return sweep
