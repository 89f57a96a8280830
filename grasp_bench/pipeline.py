"""One experiment, stage by stage: data -> train -> generate -> score -> report.

Each stage writes into ``<output_dir>/<name>/<stage>/`` and is skipped when its manifest
matches its config hash, so a rerun does only what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from grasp_bench.config import LoadedExperiment
from grasp_bench.core.yaml_loader import ConfigError, import_plugin
from grasp_bench.data import build_task, load_chat_jsonl
from grasp_bench.data.em_questions import em_drift_prompts
from grasp_bench.hardware import describe as describe_machine
from grasp_bench.hardware import resolve_dtype
from grasp_bench.locks import exclusive
from grasp_bench.methods import Recipe, load_recipe
from grasp_bench.models import resolve_model
from grasp_bench.rundir import ADAPTER, DIRECTIONS, METHOD_CARD, RunDir, parse_target, target_name
from grasp_bench.store import (
    Stage,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    file_hash,
    read_jsonl,
    stable_hash,
)
from grasp_bench.taskspec import MetricSpec, TaskSpec, get_task, rubrics_of

console = Console(stderr=True)


@dataclass
class Target:
    """One thing that is generated from: a method at a seed."""

    name: str
    recipe: Recipe
    seed: int
    adapter: Path | None = None


def load_recipes(
    exp: LoadedExperiment, recipes_dir: Path | None = None, allow_missing_deps: bool = False
) -> list[Recipe]:
    """The experiment's recipes; a dependency it does not list is an error, or (for the
    ``train`` command) is loaded from the recipes directory under its own name."""
    cfg = exp.config
    for module in cfg.plugins:
        import_plugin(module)
    base_dir = recipes_dir or _default_recipes_dir(exp.path)
    recipes = []
    for i, ref in enumerate(cfg.method_refs()):
        path = Path(ref.recipe) if ref.recipe else base_dir / f"{ref.name}.yaml"
        if ref.recipe and not path.is_absolute() and (exp.path.parent / path).exists():
            path = exp.path.parent / path
        if not path.exists():
            line = exp.lines.get(("methods", i), 1)
            raise ConfigError(f"{exp.path}:{line} methods[{i}]: no recipe at {path}")
        recipes.append(
            load_recipe(
                path,
                label=ref.name,
                overrides=ref.overrides,
                override_origin=(exp.path, exp.lines, ("methods", i, "overrides")),
            )
        )
    labels = {r.label for r in recipes}
    pending = list(recipes)
    while pending:
        r = pending.pop()
        for dep in r.method.requires():
            if dep in labels:
                continue
            if not allow_missing_deps:
                raise ConfigError(
                    f"{r.path}: method {r.label!r} needs {dep!r} in the same experiment; "
                    f"add it to methods in {exp.path}"
                )
            extra = load_recipe(base_dir / f"{dep}.yaml", label=dep)
            recipes.insert(0, extra)
            labels.add(dep)
            pending.append(extra)
    return recipes


def _default_recipes_dir(exp_path: Path) -> Path:
    """baselines/ of the repository the experiment lives in (or of the working directory)."""
    for parent in [exp_path.resolve().parent, *exp_path.resolve().parents]:
        if (parent / "baselines").is_dir():
            return parent / "baselines"
    return Path("baselines")


def _training_order(recipes: list[Recipe]) -> list[Recipe]:
    by_label = {r.label: r for r in recipes}
    ordered: list[Recipe] = []
    visiting: set[str] = set()

    def visit(r: Recipe) -> None:
        if r in ordered:
            return
        if r.label in visiting:
            raise ConfigError(f"{r.path}: dependency cycle through {r.label!r}")
        visiting.add(r.label)
        for dep in r.method.requires():
            visit(by_label[dep])
        ordered.append(r)

    for r in recipes:
        visit(r)
    return ordered


def _own_data_files(exp: LoadedExperiment) -> dict[str, Path]:
    """The user's data files the experiment names (relative to it, or a published set in the
    cache), checked to exist."""
    from grasp_bench.data.published import DATA_KINDS, is_ref, resolve_ref

    found = {}
    for key, kind in DATA_KINDS.items():
        value = getattr(exp.config.data, key)
        if is_ref(value):
            found[key] = _published(exp, key, resolve_ref, kind)
        elif value:
            path = Path(value) if Path(value).is_absolute() else exp.path.parent / value
            if not path.is_file():
                line = exp.lines.get(("data", key), 1)
                raise ConfigError(f"{exp.path}:{line} data.{key}: no file at {path}")
            found[key] = path
    return found


def check_published_refs(exp: LoadedExperiment) -> None:
    """Every ``published:NAME`` the experiment names is a registered set of the right kind
    (offline: nothing is downloaded or read from the cache)."""
    from grasp_bench.data.published import DATA_KINDS, check_ref, is_ref

    for key, kind in DATA_KINDS.items():
        if is_ref(getattr(exp.config.data, key)):
            _published(exp, key, check_ref, kind)


def _published(exp: LoadedExperiment, key: str, look: Any, kind: str) -> Any:
    """``look(reference, kind)``, its error named by the experiment's file, line and field."""
    from grasp_bench.data.published import PublishedDataError

    try:
        return look(getattr(exp.config.data, key), kind)
    except PublishedDataError as exc:
        line = exp.lines.get(("data", key), 1)
        raise ConfigError(f"{exp.path}:{line} data.{key}: {exc}") from None


def _warn_samples(drift: list[dict[str, Any]], samples: int) -> None:
    wanted = sorted({p["samples"] for p in drift if p.get("samples")})
    if wanted and wanted != [samples]:
        console.print(
            f"[yellow]note:[/] the question file asks for {wanted} samples per paraphrase; this"
            f" run samples generation.samples={samples} answers per question"
        )


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


def prepare_data(exp: LoadedExperiment) -> RunData:
    """Data stage: the task's training, control and eval sets, generated once per config."""
    cfg = exp.config
    run = RunDir.of(cfg.output_dir, cfg.name)
    model = resolve_model(cfg.model)
    console.print(f"[bold]run[/] {run}  model={model}")
    atomic_write_json(run.marker, {"config_path": str(exp.path.resolve())})
    from grasp_bench.data.published import training_data_label

    own = _own_data_files(exp)
    hashes = {k: file_hash(p) for k, p in own.items()}
    training_data = training_data_label(cfg.data.train_file, hashes.get("train_file"))
    stage = Stage(
        run.root,
        run.data.name,
        {
            "task": cfg.task,
            # the user's files by content, not by path (a snapshot makes paths absolute)
            **cfg.data.model_dump(exclude={"train_file", "drift_questions"}),
            "files": hashes,
        },
    )
    if not stage.is_done():
        # everything is read and checked before the old stage is dropped: a bad row in a
        # user's file fails here and loses nothing already computed
        td = build_task(
            cfg.task, cfg.data.seed, cfg.data.n_train, cfg.data.n_eval_task, cfg.data.n_eval_drift
        )
        meta = dict(td.meta)
        meta["training_data"] = training_data
        if "train_file" in own:
            td.train = load_chat_jsonl(own["train_file"])
            meta["train_file"] = str(own["train_file"])
        if "drift_questions" in own:
            drift = em_drift_prompts(own["drift_questions"])
            td.eval_prompts = [p for p in td.eval_prompts if p["split"] != "drift"] + drift
            meta["drift_questions"] = str(own["drift_questions"])
            _warn_samples(drift, cfg.generation.samples)
        stage.reset_if_stale()
        atomic_write_jsonl(run.train_rows, td.train)
        atomic_write_jsonl(run.control_rows, td.control)
        atomic_write_jsonl(run.eval_prompts, td.eval_prompts)
        stage.finish(meta=meta, counts={"train": len(td.train), "eval": len(td.eval_prompts)})
    return RunData(
        run=run,
        model=model,
        train_rows=read_jsonl(run.train_rows),
        control_rows=read_jsonl(run.control_rows),
        eval_prompts=read_jsonl(run.eval_prompts),
        data_hash=file_hash(run.train_rows),
        files=own,
        training_data=training_data,
    )


def train_all(
    exp: LoadedExperiment, recipes: list[Recipe], data: RunData, progress: bool = True
) -> list[Target]:
    """Train stage: every method at every seed, dependencies first; finished ones are kept."""
    from grasp_bench.training import train_adapter

    cfg = exp.config
    targets: list[Target] = []
    for seed in cfg.seeds:
        adapters: dict[str, Path] = {}
        hashes: dict[str, str] = {}
        for recipe in _training_order(recipes):
            target = Target(target_name(recipe.label, seed), recipe, seed)
            if recipe.method.trains:
                deps = {d: adapters[d] for d in recipe.method.requires()}
                stage_cfg = {
                    "model": data.model,
                    "method": recipe.method.name,
                    "config": recipe.config,
                    # what the user asked for, not what this machine resolved it to (the
                    # method card records that), so a run trained on a GPU stays done on a CPU
                    "train": cfg.train.model_dump(),
                    "data": data.data_hash,
                    "seed": seed,
                    "deps": {d: hashes[d] for d in deps},
                }
                stage = Stage(data.run.train, target.name, stage_cfg)
                if not stage.is_done():
                    stage.reset_if_stale()
                    train_adapter(
                        recipe.method,
                        data.model,
                        data.control_rows
                        if recipe.method.trains_on == "control"
                        else data.train_rows,
                        cfg.train,
                        stage.dir,
                        seed,
                        dependencies=deps,
                        contrast_rows=data.control_rows,
                        method_config=recipe.config,
                        trust_remote_code=cfg.trust_remote_code,
                        progress=progress,
                    )
                    stage.finish(method=recipe.method.name, seed=seed)
                adapters[recipe.label] = stage.dir / ADAPTER
                hashes[recipe.label] = stage.config_hash
                target.adapter = adapters[recipe.label]
            targets.append(target)
    return targets


def train_targets(exp: LoadedExperiment, recipes: list[Recipe]) -> dict[str, Path | None]:
    """Data and train stages only; returns label -> adapter (first seed)."""
    with exclusive(RunDir.of(exp.config.output_dir, exp.config.name).root):
        targets = train_all(exp, recipes, prepare_data(exp))
    return {t.recipe.label: t.adapter for t in targets if t.seed == exp.config.seeds[0]}


def run_experiment(
    exp: LoadedExperiment, progress: bool = True, until: str = "report"
) -> dict[str, Any]:
    """Run (or resume) the stages of an experiment up to ``until`` (train, generate, score or
    report); returns what the last stage made. Holds the run directory's lock throughout: a
    second process on the same run fails at once (``LockHeld``) instead of writing beside it."""
    if until not in ("train", "generate", "score", "report"):
        raise ValueError(f"until must be train, generate, score or report, not {until!r}")
    recipes = load_recipes(exp)  # a config error is reported before anything is written
    spec = get_task(exp.config.task)
    with exclusive(RunDir.of(exp.config.output_dir, exp.config.name).root):
        return _run_stages(exp, recipes, spec, progress, until)


def _run_stages(
    exp: LoadedExperiment, recipes: list[Recipe], spec: TaskSpec, progress: bool, until: str
) -> dict[str, Any]:
    from grasp_bench.generation import (
        generate_all,
        generate_hf,
        resolve_backend,
        resolve_generation_dtype,
    )
    from grasp_bench.scoring import metrics_for, open_judges, score_rows

    cfg = exp.config
    data = prepare_data(exp)
    snapshot_experiment(exp, recipes, data.run, data.files)
    targets = train_all(exp, recipes, data, progress)
    run = data.run
    if until == "train":
        return {"run_dir": run.root, "targets": targets}
    if spec.evaluate is not None:  # teacher-forced metrics: no generation, no judge
        records = measure_all(exp, spec, targets, data, progress)
        if until in ("generate", "score"):
            return {"run_dir": run.root, "records": records}
        backends = {t.name: "hf-teacher-forced" for t in targets}
        return _report(exp, spec, targets, records, data, backends)

    # generate: vLLM (one engine start for the base model and every adapter) or batched
    # transformers, whichever the generation config resolves to on this machine; methods whose
    # intervention needs activation hooks always go through transformers
    backend = resolve_backend(cfg.generation.backend)
    dtype = resolve_generation_dtype(cfg.generation.dtype, backend)
    generation = cfg.generation.model_copy(update={"dtype": dtype})
    gen_targets = {t.name: (str(t.adapter) if t.adapter else None) for t in targets}
    hooked = {t.name for t in targets if t.recipe.method.serving == "hf-hooks"}
    shared = {
        "model": data.model,
        "generation": cfg.generation.model_dump(),
        "resolved": {"backend": backend, "dtype": dtype},
        "prompts": stable_hash(data.eval_prompts),
    }
    adapters = {t.name: stable_hash(adapter_identity(t.adapter)) for t in targets}
    gen_stage = Stage(run.root, run.generate.name, {**shared, "targets": adapters})
    if not gen_stage.is_done():
        # one identity per target's completions: a new seed or method generates only its own
        gen_stage.reset_if_stale(
            keys={
                run.completions(n).name: stable_hash({**shared, "adapter": a})
                for n, a in adapters.items()
            }
        )
        served = {n: a for n, a in gen_targets.items() if backend == "vllm" and n not in hooked}
        if served:
            generate_all(
                data.model,
                served,
                data.eval_prompts,
                generation,
                generation.seed,
                gen_stage.dir,
                trust_remote_code=cfg.trust_remote_code,
            )
        for t in targets:
            if t.name not in served:
                generate_hf(
                    data.model,
                    t.name,
                    gen_targets[t.name],
                    data.eval_prompts,
                    generation,
                    generation.seed,
                    gen_stage.dir,
                    method=t.recipe.method,
                    trust_remote_code=cfg.trust_remote_code,
                )
        gen_stage.finish(
            targets=sorted(gen_targets),
            backends={n: "vllm" if n in served else "hf" for n in gen_targets},
            dtype=dtype,
            machine=describe_machine(),
        )
    completions = [row for name in gen_targets for row in read_jsonl(run.completions(name))]
    if until == "generate":
        return {"run_dir": run.root, "completions": completions}

    # score
    judge_cfg = cfg.judge.model_dump(exclude={"cache", "concurrency"})
    judge_cfg["dtype"] = resolve_dtype(cfg.judge.dtype)
    metrics = metrics_for(spec, cfg.judge)
    score_stage = Stage(
        run.root,
        run.score.name,
        {
            "generate": gen_stage.config_hash,
            "judge": judge_cfg,
            "task": cfg.task,
            "metrics": [_metric_identity(m) for m in metrics],
        },
    )
    if not score_stage.is_done():
        score_stage.reset_if_stale()
        reference = {p["prompt_id"]: p.get("target") for p in data.eval_prompts}
        rows = [{**c, "reference": reference.get(c["prompt_id"])} for c in completions]
        with open_judges(
            cfg.judge,
            rubrics_of(metrics),
            cfg.judge_cache,
            server_log=score_stage.dir / "judge-server.log",
            progress=progress,
        ) as judges:
            _check_canaries(cfg.judge, judges, score_stage.dir, cfg.judge_cache.parent)
            records = score_rows(rows, metrics, judges, progress=progress)
        atomic_write_jsonl(run.scores, records)
        score_stage.finish(n=len(records))
    records = read_jsonl(run.scores)
    if until == "score":
        return {"run_dir": run.root, "records": records}

    return _report(exp, spec, targets, records, data, gen_stage.manifest()["backends"])


CANARIES = "canaries.json"


def _check_canaries(judge_cfg: Any, judges: dict[str, Any], out: Path, baseline_dir: Path) -> None:
    """Grade each LLM-judged rubric's canaries before the run's answers (judge/canary.py),
    against baselines kept in ``baseline_dir`` (the judge cache's folder); a drifted judge is a
    loud warning and a line in the report's meta."""
    if judge_cfg.kind == "offline":
        return
    from grasp_bench.judge.canary import check
    from grasp_bench.judge.rubric import load_rubric

    results = []
    for rubric in judge_cfg.rubrics:
        if rubric not in judges:
            continue
        scale = load_rubric(rubric).scale
        got = check(judges[rubric], rubric, baseline_dir, (scale.min, scale.max))
        if got is None:
            continue
        results.append({**got.to_json(), "line": got.line()})
        if got.status == "drifted":
            console.print(f"[bold red]JUDGE CHANGED[/] {got.line()}: its grades of these fixed"
                          " answers moved since its first run; its numbers are not comparable"
                          " with earlier runs'", highlight=False)  # fmt: skip
    if results:
        atomic_write_json(out / CANARIES, results)


def _metric_identity(metric: MetricSpec) -> dict[str, Any]:
    """A metric as the score stage's hash sees it; a field left at its empty default is left
    out, so adding one to MetricSpec does not re-score runs whose metrics did not change."""
    fields = dataclasses.asdict(metric)
    if not fields["outcomes"]:
        del fields["outcomes"]
    return fields


def measure_all(
    exp: LoadedExperiment, spec: TaskSpec, targets: list[Target], data: RunData, progress: bool
) -> list[dict[str, Any]]:
    """Score stage of a task measured teacher-forced (``TaskSpec.evaluate``): one records file
    per target, so a new seed or method measures only its own and a kill loses one target."""
    cfg, run = exp.config, data.run
    shared = {
        "model": data.model,
        "task": cfg.task,
        "prompts": stable_hash(data.eval_prompts),
        "evaluate": spec.evaluate_version,
    }
    adapters = {t.name: stable_hash(adapter_identity(t.adapter)) for t in targets}
    stage = Stage(run.root, run.score.name, {**shared, "targets": adapters})
    if not stage.is_done():
        # both files of a target are its output: a config that grows keeps them together
        keys = {}
        for n, a in adapters.items():
            key = stable_hash({**shared, "adapter": a})
            keys[run.measured(n).name] = keys[run.measured_layers(n).name] = key
        stage.reset_if_stale(keys=keys)
        measured: dict[str, str] = {}  # adapter identity -> a target measured with it
        seconds: dict[str, float] = {}  # measurement time of the targets measured now
        for i, t in enumerate(targets, 1):
            if run.measured(t.name).exists() and run.measured_layers(t.name).exists():
                measured.setdefault(adapters[t.name], t.name)
                continue
            twin = measured.get(adapters[t.name])
            if twin is not None and t.adapter is None and t.recipe.method.serving != "hf-hooks":
                # the base model at another seed: the same model, so the same measurement
                for path in (run.measured_layers(twin), run.measured(twin)):
                    rows = [{**r, "target": t.name} for r in read_jsonl(path)]
                    dest = run.measured(t.name) if path == run.measured(twin) else None
                    atomic_write_jsonl(dest or run.measured_layers(t.name), rows)
                continue
            if progress:
                console.print(f"measure {t.name} ({i}/{len(targets)})")
            measured.setdefault(adapters[t.name], t.name)
            started = time.perf_counter()
            records, layers = spec.evaluate(
                data.model,
                t.name,
                str(t.adapter) if t.adapter else None,
                t.recipe.method,
                data.eval_prompts,
                cfg.trust_remote_code,
            )
            seconds[t.name] = round(time.perf_counter() - started, 1)
            atomic_write_jsonl(run.measured_layers(t.name), layers)
            atomic_write_jsonl(run.measured(t.name), records)
        records = [r for t in targets for r in read_jsonl(run.measured(t.name))]
        atomic_write_jsonl(run.scores, records)
        stage.finish(
            n=len(records), targets=sorted(adapters), seconds=seconds, machine=describe_machine()
        )
    return read_jsonl(run.scores)


def _report(
    exp: LoadedExperiment,
    spec: TaskSpec,
    targets: list[Target],
    records: list[dict[str, Any]],
    data: RunData,
    backends: dict[str, str],
) -> dict[str, Any]:
    """Report stage: the trade-off table, its files and the direction agreement table."""
    from grasp_bench.report import build_table, print_table, write_report

    run = data.run
    cfg = exp.config
    meta_rows = [
        {"target": t.name, "method": t.recipe.label, "seed": t.seed, "backend": backends[t.name]}
        for t in targets
    ]
    table = build_table(spec, records, meta_rows)
    title = f"{cfg.name}: task={cfg.task}, model={cfg.model}"
    meta = {
        "experiment": cfg.model_dump(mode="json"),
        "model_path": resolve_model(cfg.model),
        "targets": meta_rows,
        "training_data": data.training_data,
    }
    canaries = run.score / CANARIES
    if canaries.exists():  # the LLM judge's canary check, beside the numbers it vouches for
        meta["judge_canaries"] = [c["line"] for c in json.loads(canaries.read_text())]
    paths = write_report(table, run.report, title, meta)
    if spec.seed_report is not None:
        paths.update(spec.seed_report(run, records, meta_rows))
    cosines = direction_agreement(run.train)
    if cosines is not None:
        atomic_write_text(run.report / "direction_cosines.csv", cosines.to_csv(index=False))
        console.print(
            "directions vs the reference direction (|cos| of the first; span), per layer:"
        )
        for (target, ref), part in cosines.groupby(["target", "reference"], sort=True):
            console.print(
                f"  {target} vs {ref}: |cos| mean {part['abs_cos'].mean():.3f},"
                f" max {part['abs_cos'].max():.3f}; span mean {part['span_cos'].mean():.3f}"
            )
    print_table(table, title)
    console.print(f"[green]report[/] {run.report}")
    return {"paths": paths, "table": table, "run_dir": run.root}


def direction_agreement(train_dir: Path):
    """How well each method's directions agree with a reference direction, per layer: the
    supervised difference of means of the same seed (or the planted truth a method was given as
    ``directions_file``). ``abs_cos`` compares the first direction, ``span_cos`` the whole span
    (|V^T u|, for k > 1). None if the run has no reference or nothing to compare."""
    import json

    import pandas as pd
    from safetensors import safe_open

    from grasp_bench.directions import cosine_by_layer, load_directions

    found = []
    for path in sorted(train_dir.glob(f"*/{DIRECTIONS}")):
        with safe_open(str(path), "pt") as fh:
            prov = json.loads(fh.metadata().get("provenance", "{}"))
        seed = str(parse_target(path.parent.name)[1])
        found.append((path.parent.name, seed, prov, load_directions(path)))
    references = {
        seed: (name, dirs)
        for name, seed, prov, dirs in found
        if prov.get("kind") in ("supervised", "file")
    }
    rows = []
    for name, seed, prov, dirs in found:
        if seed not in references or references[seed][0] == name:
            continue
        ref_name, ref = references[seed]
        for layer, cos in cosine_by_layer(dirs, ref).items():
            u = ref[layer][:, 0] / ref[layer][:, 0].norm()
            rows.append(
                {
                    "target": name,
                    "kind": prov.get("kind", ""),
                    "reading": prov.get("reading", ""),
                    "layer": layer,
                    "abs_cos": round(cos, 6),
                    "span_cos": round(float((dirs[layer].T @ u).norm()), 6),
                    "reference": ref_name,
                }
            )
    return pd.DataFrame(rows) if rows else None


def snapshot_experiment(
    exp: LoadedExperiment, recipes: list[Recipe], run: RunDir, files: dict[str, Path]
) -> Path:
    """Write the experiment as run, with every recipe resolved (overrides applied) beside it,
    so ``generate``/``judge``/``submit`` on this run directory never re-read files edited
    since; paths in it are absolute."""
    import yaml

    cfg = exp.config.model_dump(mode="json")
    cfg["output_dir"] = str(Path(cfg["output_dir"]).resolve())
    for key, path in files.items():  # resolved by the data stage
        cfg["data"][key] = str(path.resolve())
    cfg["methods"] = []
    for r in recipes:
        recipe = {"method": r.method.name, "description": r.description, "config": r.config}
        atomic_write_text(run.recipe(r.label), yaml.safe_dump(recipe))
        cfg["methods"].append(
            {"name": r.label, "recipe": run.recipe(r.label).relative_to(run.root).as_posix()}
        )
    atomic_write_text(run.snapshot, yaml.safe_dump(cfg, sort_keys=False))
    atomic_write_json(
        run.marker, {"config_path": str(exp.path.resolve()), "snapshot": run.snapshot.name}
    )
    return run.snapshot


def adapter_identity(adapter: Path | None) -> dict[str, Any]:
    """Identity of a trained adapter: its method card (changes whenever it is retrained)."""
    import json

    if adapter is None:
        return {}
    card = adapter / METHOD_CARD
    return json.loads(card.read_text()) if card.exists() else {}
