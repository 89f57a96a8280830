"""The experiment schema: what an experiment YAML may say, validated by pydantic (the file is
read by ``core.yaml_loader``, whose errors name file, line and field)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
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

# --------------------------------------------------------------------------------------------
# Experiment config


class TrainConfig(StrictModel):
    """Training settings shared by every method of an experiment, so methods differ only where
    they claim to."""

    steps: int = Field(60, gt=0, description="Optimiser steps.")
    batch_size: int = Field(8, gt=0, description="Sequences per step.")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(5, ge=0, description="Linear warm-up steps.")
    max_length: int = Field(256, gt=8, description="Token limit per training sequence.")
    checkpoint_every: int = Field(20, gt=0, description="Save a resumable checkpoint this often.")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (None: torch default).")
    # The fields below are left out of ``model_dump`` while they hold their defaults, so the
    # stage hash of every run made before they existed stays what it was (the default is the
    # old behaviour); a value that is set is recorded and hashed like any other field.
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        exclude_if=lambda v: v == "auto",
        description="Where the adapter is trained: auto is cuda where a CUDA GPU is visible,"
        " else cpu; cuda on a machine without one is an error, not a silent CPU run.",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        exclude_if=lambda v: v == "auto",
        description="Base weights while training (LoRA weights stay float32): auto is bfloat16"
        " on a CUDA GPU that supports it, float32 otherwise (also on CPUs with native bf16).",
    )
    gradient_checkpointing: bool = Field(
        False,
        exclude_if=lambda v: v is False,
        description="Recompute activations in the backward pass: less memory, ~30% more time.",
    )
    load_in_4bit: bool = Field(
        False,
        exclude_if=lambda v: v is False,
        description="QLoRA: base weights quantised to 4-bit NF4 (bf16 compute) by bitsandbytes;"
        " needs a CUDA GPU and the `qlora` extra.",
    )
    logits: Literal["labelled", "all"] = Field(
        "labelled",
        exclude_if=lambda v: v == "labelled",
        description="Where the LM head runs while training: labelled (default): only positions"
        " whose next token is a label, 1.13x faster per step on the embedded model, the same"
        " loss to 5e-7 (bench/results/throughput.md); all: every position, the model's own"
        " loss, as runs before this option were made. A model whose forward takes no"
        " logits_to_keep runs all positions.",
    )

    objective: Literal["auto", "sft", "distill"] = Field(
        "auto",
        exclude_if=lambda v: v == "auto",
        description="The loss: sft is cross-entropy on the assistant turn; distill is KL to"
        " stored teacher log-probabilities over a restricted vocabulary (rows with a"
        " `distill` field, as the implicit-factor task's); auto picks distill when every"
        " training row carries targets, sft when none does.",
    )

    @model_validator(mode="after")
    def _quantised_needs_a_gpu(self) -> TrainConfig:
        if self.load_in_4bit and self.device == "cpu":
            raise ValueError("load_in_4bit needs a CUDA GPU (bitsandbytes): set device auto/cuda")
        return self


class GenerationConfig(StrictModel):
    """Sampling settings, recorded with every completion."""

    max_tokens: int = Field(48, gt=0, description="New tokens per completion.")
    temperature: float = Field(0.0, ge=0, description="0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    samples: int = Field(1, gt=0, description="Completions per prompt.")
    max_model_len: int = Field(1024, gt=0, description="vLLM context length.")
    backend: Literal["auto", "vllm", "hf"] = Field(
        "auto",
        description="vllm, hf (batched transformers generate, LoRA merged in float32), or auto:"
        " vLLM on a GPU, hf on a CPU where it measured faster (see hardware/generation docs).",
    )
    seed: int = Field(0, description="Sampling seed (recorded with every completion).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weights and activations while generating; auto is bf16 where the device"
        " computes it natively, float32 on CPUs without it. The resolved one is recorded.",
    )
    batch_size: int = Field(16, gt=0, description="Prompts per batch (hf back end).")
    tensor_parallel_size: int = Field(
        1,
        gt=0,
        description="GPUs one vLLM engine spans (large models); 1 keeps stage hashes as before.",
        exclude_if=lambda v: v == 1,
    )


class DataConfig(StrictModel):
    """Sizes of the generated data sets."""

    n_train: int = Field(240, gt=0, description="Training examples.")
    n_eval_task: int = Field(50, gt=0, description="Held-out in-domain prompts (task score).")
    n_eval_drift: int = Field(40, gt=0, description="Unrelated prompts (drift).")
    seed: int = Field(
        0, description="Data seed: eval sets stay fixed across training seeds, so they pool."
    )
    train_file: str | None = Field(
        None,
        description="Chat JSONL to train on instead of the task's generated set (e.g. the"
        " published insecure-code data); relative to the experiment file.",
    )
    drift_questions: str | None = Field(
        None,
        description="Question file in the emergent-misalignment YAML layout (anchors, system"
        " prompts, paraphrases) to use as the drift set; relative to the experiment file.",
    )


class JudgeConfig(StrictModel):
    """Who scores completions. The task's offline scorers always run; ``rubrics`` add LLM-judged
    metrics from an OpenAI-compatible endpoint (``openai``) or a local vLLM server of any model
    that the project starts itself (``local``), or are graded by any registered judge kind (a
    plugin's judge class, named by its kind; checked against the registry when judges open)."""

    kind: str = Field(
        "offline",
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",  # a kind's name; never a key's shape
        description="offline, openai, local, or a registered judge kind (a plugin's) that"
        " grades the listed rubrics.",
    )
    rubrics: list[str] = Field(
        default_factory=list, description="LLM-judged rubrics (names or YAML paths)."
    )
    model: str = Field("default", description="openai: model name; local: model to serve.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="local: the served model's dtype (auto as for generation)."
    )
    base_url: str | None = Field(None, description="openai: the endpoint's base URL.")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: env var holding the key.")
    concurrency: int = Field(8, gt=0, description="Judge calls in flight.")
    timeout: float = Field(60.0, gt=0, description="Seconds per judge call.")
    max_retries: int = Field(3, ge=0, description="Retries on 429/5xx/timeouts.")
    cache: str | None = Field(
        None, description="SQLite cache (default: <output_dir>/judge.sqlite)."
    )

    @model_validator(mode="after")
    def _needs(self) -> JudgeConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("kind openai needs base_url")
        if self.kind != "offline" and not self.rubrics:
            raise ValueError("a judge kind other than offline needs at least one rubric")
        return self

    # a secret put where a name or URL belongs would be copied into every run's snapshot and
    # results; the messages never repeat the value
    @field_validator("api_key_env")
    @classmethod
    def _names_a_variable(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", v):
            raise ValueError(
                "must be the name of an environment variable (letters, digits, '_') that holds"
                " the key, never the key itself"
            )
        return v

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        from urllib.parse import urlsplit

        if v and (urlsplit(v).username or urlsplit(v).password):
            raise ValueError("must not hold credentials (user:key@); use api_key_env")
        return v

    @property
    def name(self) -> str:
        return self.kind if self.kind == "offline" else f"{self.kind}:{self.model}"


class MethodRef(StrictModel):
    """A method of the experiment: a recipe from ``baselines/`` plus optional overrides."""

    name: str = Field(description="Label of this row in the results (unique in the experiment).")
    recipe: str | None = Field(None, description="Recipe YAML path; default baselines/<name>.yaml.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Keys of recipe config.")


class ExperimentConfig(StrictModel):
    """One experiment: task x methods x model x seeds x judge."""

    name: str = Field(description="Run id; outputs go to <output_dir>/<name>/.")
    plugins: list[str] = Field(
        default_factory=list, description="Modules that register methods, tasks or judges."
    )
    model: str = Field("default", description="'default' (embedded), an HF model id or a path.")
    task: str = Field(
        "toy", description="A registered task (built in, or registered by a plugin module)."
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds.")
    methods: list[str | MethodRef] = Field(min_length=1, description="Methods to compare.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Who scores.")
    output_dir: str = Field("runs", description="Where run directories go.")
    trust_remote_code: bool = Field(False, description="Only for models you trust.")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @property
    def judge_cache(self) -> Path:
        """The LLM judge's grade cache (and beside it, its canaries' baselines)."""
        return Path(self.judge.cache or Path(self.output_dir) / "judge.sqlite")

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not safe_name(100).fullmatch(v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (it names a directory)")
        return v

    @field_validator("task")
    @classmethod
    def _task_is_registered(cls, v: str, info: ValidationInfo) -> str:
        from grasp_bench.core.registry import TASKS

        for module in info.data.get("plugins", []):  # a plugin may register the task
            import_plugin(module)
        if v not in TASKS:
            raise ValueError(f"unknown task {v!r}; registered: {TASKS.names()}")
        return v

    def method_refs(self) -> list[MethodRef]:
        refs = [MethodRef(name=m) if isinstance(m, str) else m for m in self.methods]
        names = [r.name for r in refs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"methods: duplicate names {dupes}")
        return refs


class LoadedExperiment(BaseModel):
    """An experiment config plus where it came from (for error messages and recipes)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    config: ExperimentConfig
    path: Path
    lines: dict[Loc, int]


def load_experiment(path: Path) -> LoadedExperiment:
    path = Path(path)
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1 <root>: expected a mapping of experiment settings")
    _import_plugins(data.get("plugins"), path, lines)
    config = validate_as(ExperimentConfig, data, path, lines)
    try:
        refs = config.method_refs()
    except ValueError as exc:
        raise ConfigError(f"{path}:{line_for(('methods',), lines)} {exc}") from None
    for i, ref in enumerate(refs):  # a label names run directories (<label>-s<seed>)
        if not SAFE_LABEL.fullmatch(ref.name):
            named = isinstance(config.methods[i], MethodRef)
            loc = ("methods", i, "name") if named else ("methods", i)
            raise ConfigError(
                f"{path}:{line_for(loc, lines)} {format_loc(loc)}: {ref.name!r} must be"
                " letters, digits, '.', '_' or '-' (it names a directory)"
            )
    return LoadedExperiment(config=config, path=path, lines=lines)


SAFE_LABEL = safe_name(64)  # as the board's SAFE_NAME


def _import_plugins(plugins: Any, path: Path, lines: dict[Loc, int]) -> None:
    """Import the experiment's plugin modules (they may register its task and methods); a
    name that cannot be imported is an error at its line, not a traceback later."""
    if not isinstance(plugins, list):
        return  # not a list: the schema says so
    for i, module in enumerate(plugins):
        if not isinstance(module, str):
            continue
        try:
            import_plugin(module)
        except ValueError as exc:
            line = line_for(("plugins", i), lines)
            raise ConfigError(f"{path}:{line} plugins[{i}]: {exc}") from None
