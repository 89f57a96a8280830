"""Experiment and recipe YAML, validated by pydantic, with errors that name file, line and field.

A wrong key is an error (``extra="forbid"``), never silently ignored. Every validation error is
mapped back to the YAML line of the offending field (or of its nearest existing parent), so a
user reads ``baselines/grasp.yaml:7 config.rank: must be > 0`` and knows where to look.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from grasp_bench.core.names import safe_name

Loc = tuple[Any, ...]


class ConfigError(ValueError):
    """A configuration problem, already formatted as ``file:line field: message`` lines."""


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, fields documented, and no float
    is infinite or NaN (YAML's ``.inf`` or ``1e999`` would pass ``gt=0`` bounds)."""

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), allow_inf_nan=False, hide_input_in_errors=True
    )


# --------------------------------------------------------------------------------------------
# YAML with line numbers


# A config is a few hundred values a few levels deep; far beyond that is a mistake or an attack
# (a "billion laughs" alias bomb expands 9 aliases of 9 aliases ... into 10^9 values).
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000
MAX_INT_DIGITS = 4000  # below Python's int-from-string limit (4300), which would raise raw


def _line_map(node: yaml.Node, prefix: Loc = ()) -> dict[Loc, int]:
    """Map every key path in a composed YAML tree to its 1-based line."""
    lines: dict[Loc, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key is rejected when constructed
            path = (*prefix, key_node.value)
            lines.update(_line_map(value_node, path))
            lines[path] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_map(item, (*prefix, i)))
    return lines


def _check_tree(node: yaml.Node, path: Path) -> None:
    """Reject what safe_load accepts but a config must not have: duplicate keys (the last one
    would win in silence), recursive aliases, alias bombs and absurd nesting or integers.
    Linear in the composed nodes: an alias is sized once, however often it is used."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values when expanded, height)
    active: set[int] = set()

    def fail(at: yaml.Node, why: str) -> ConfigError:
        return ConfigError(f"{path}:{at.start_mark.line + 1}: invalid YAML: {why}")

    def visit(n: yaml.Node, depth: int) -> tuple[int, int]:
        if id(n) in done:
            size, height = done[id(n)]
        else:
            if id(n) in active:
                raise fail(n, "an alias refers to its own anchor (a recursive structure)")
            if depth > MAX_YAML_DEPTH:
                raise fail(n, f"nested deeper than {MAX_YAML_DEPTH} levels")
            active.add(id(n))
            size, height = 1, 0
            if isinstance(n, yaml.MappingNode):
                seen: dict[tuple[str, Any], int] = {}
                for key, value in n.value:
                    if isinstance(key, yaml.ScalarNode):
                        if (key.tag, key.value) in seen:
                            first = seen[(key.tag, key.value)]
                            raise fail(key, f"duplicate key {key.value!r} (first on line {first})")
                        seen[(key.tag, key.value)] = key.start_mark.line + 1
                    children = [visit(key, depth + 1), visit(value, depth + 1)]
                    size += sum(c[0] for c in children)
                    height = max(height, *(c[1] + 1 for c in children))
            elif isinstance(n, yaml.SequenceNode):
                for item in n.value:
                    s, h = visit(item, depth + 1)
                    size, height = size + s, max(height, h + 1)
            elif n.tag == "tag:yaml.org,2002:int" and len(n.value) > MAX_INT_DIGITS:
                raise fail(n, f"an integer of more than {MAX_INT_DIGITS} digits")
            active.discard(id(n))
            done[id(n)] = (size, height)
        if depth + height > MAX_YAML_DEPTH:
            raise fail(n, f"nested deeper than {MAX_YAML_DEPTH} levels (through an alias)")
        if size > MAX_YAML_VALUES:
            raise fail(n, f"more than {MAX_YAML_VALUES} values once aliases are expanded")
        return size, height

    visit(node, 0)


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_YAML_DEPTH while composing (deeper, PyYAML's scanner turns
    quadratic and its composer hits Python's recursion limit), and whose value errors (a date
    like 2024-13-45) carry the value's line."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r:.40}: {exc}", node.start_mark
            ) from exc


def load_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Load YAML (safely: plain data only) and the line of each key path; every problem with
    the file is a ConfigError that names the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
    loader = None
    try:
        loader = _Loader(text)  # checks every character is printable
        node = loader.get_single_node()
        if node is None:
            return None, {(): 1}
        _check_tree(node, path)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(
            f"{path}:{line}: invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
        ) from None
    except yaml.YAMLError as exc:  # the reader's: a control character, say
        line = text[: getattr(exc, "position", 0) or 0].count("\n") + 1
        raise ConfigError(f"{path}:{line}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # a backstop: compose_node stops at MAX_YAML_DEPTH before this
        line = loader.line + 1 if loader else 1
        raise ConfigError(
            f"{path}:{line}: invalid YAML: nested deeper than {MAX_YAML_DEPTH} levels"
        ) from None
    finally:
        if loader:
            loader.dispose()
    return data, _line_map(node)


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if not isinstance(part, int) and not str(part).isprintable():
            part = repr(str(part))  # a key with a line break must not break the message's lines
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def format_validation_error(
    exc: ValidationError, path: Path, lines: dict[Loc, int], prefix: Loc = ()
) -> ConfigError:
    messages = []
    for err in exc.errors():
        # pydantic appends the tagged-union/function name to loc for some errors; keep data keys
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        full = (*prefix, *loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; allowed keys are in the docs)"
        msg = msg.removeprefix("Value error, ")
        messages.append(f"{path}:{_line_for(full, lines)} {_format_loc(full)}: {msg}")
    return ConfigError("\n".join(messages))


def validate_as(
    model: type[BaseModel], data: Any, path: Path, lines: dict[Loc, int], prefix: Loc = ()
):
    """Validate ``data`` (found at ``prefix`` in ``path``) as ``model``, or raise ConfigError."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise format_validation_error(exc, path, lines, prefix) from None


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
    that the project starts itself (``local``)."""

    kind: Literal["offline", "openai", "local"] = Field("offline", description="Judge kind.")
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
            raise ValueError(f"kind {self.kind} needs at least one rubric")
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
        raise ConfigError(f"{path}:{_line_for(('methods',), lines)} {exc}") from None
    for i, ref in enumerate(refs):  # a label names run directories (<label>-s<seed>)
        if not SAFE_LABEL.fullmatch(ref.name):
            named = isinstance(config.methods[i], MethodRef)
            loc = ("methods", i, "name") if named else ("methods", i)
            raise ConfigError(
                f"{path}:{_line_for(loc, lines)} {_format_loc(loc)}: {ref.name!r} must be"
                " letters, digits, '.', '_' or '-' (it names a directory)"
            )
    return LoadedExperiment(config=config, path=path, lines=lines)


SAFE_LABEL = safe_name(64)  # as the board's SAFE_NAME


def import_plugin(module: str) -> None:
    """Import a plugin module (it may register tasks, methods or judges); ValueError with the
    reason where it cannot be imported."""
    try:
        importlib.import_module(module)
    except (ImportError, TypeError, ValueError) as exc:  # TypeError: a relative name (".x")
        raise ValueError(f"plugin {module!r} cannot be imported: {exc}") from None


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
            line = _line_for(("plugins", i), lines)
            raise ConfigError(f"{path}:{line} plugins[{i}]: {exc}") from None
