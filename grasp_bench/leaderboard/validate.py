"""Submission validation, run by ``grasp-bench leaderboard validate`` and by CI on every PR.

Each problem names the file, the line or field, and why. A submission must be data only,
comparable with the baselines (same task, eval set, judges, seeds), and its summary must be
what its per-sample records recompute to.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from grasp_bench.core.names import safe_name
from grasp_bench.data.taskspec import registered_tasks
from grasp_bench.leaderboard.metrics import summarise
from grasp_bench.leaderboard.schema import SCHEMA_VERSION, SampleRecord, Summary

REQUIRED = ("summary.json", "samples.jsonl", "recipe.yaml")
ALLOWED_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".md", ".safetensors"}
MAX_FILE_BYTES = 20 * 1024 * 1024
SAFE_NAME = safe_name(64)
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
BASELINE_REFERENCE = ("lora", "base")
TOLERANCE = 1e-4


def _loc(err: dict) -> str:
    return ".".join(str(p) for p in err["loc"]) or "<root>"


def _read_json(path: Path, name: Path) -> tuple[Any, str | None]:
    """The JSON in ``path``, or why it has none (``name:line <root>: ...``)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8")), None
    except UnicodeDecodeError as exc:
        return None, f"{name}:1 <root>: not UTF-8 text: {exc.reason}"
    except json.JSONDecodeError as exc:
        return None, f"{name}:{exc.lineno} <root>: invalid JSON: {exc.msg}"
    except RecursionError:
        return None, f"{name}:1 <root>: invalid JSON: nested too deeply"
    except ValueError as exc:  # an integer over Python's digit limit
        return None, f"{name}:1 <root>: invalid JSON: {exc}"


def _data_problems(path: Path, name: Path) -> list[str]:
    """Why a file is not the plain data its suffix claims (a pickle in disguise, a safetensors
    file without its JSON header, text that does not parse), or []. summary.json and
    samples.jsonl are read in full later."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:2] in PICKLE_MAGIC:
        return [f"{name}: looks like a pickle; only safetensors/JSON are accepted"]
    if path.suffix == ".safetensors":
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        with open(path, "rb") as fh:
            header = fh.read(8 + size)[8:] if 0 < size <= MAX_FILE_BYTES else b""
        try:
            ok = isinstance(json.loads(header), dict)
        except (ValueError, RecursionError):
            ok = False
        return [] if ok else [f"{name}: not a safetensors file (no JSON header)"]
    if path.name in ("summary.json", "samples.jsonl"):
        return []
    if path.suffix == ".json":
        data, problem = _read_json(path, name)
        if not problem and path.name == "method_card.json" and not isinstance(data, dict):
            problem = f"{name}:1 <root>: expected a JSON object"
        return [problem] if problem else []
    if path.suffix in (".yaml", ".yml"):
        from grasp_bench.core.yaml_loader import ConfigError, load_yaml

        try:
            data, _ = load_yaml(path)
        except ConfigError as exc:
            return [str(exc).replace(str(path), str(name), 1)]
        if path.name == "recipe.yaml" and not (
            isinstance(data, dict) and isinstance(data.get("method"), str)
        ):
            return [f"{name}:1 method: a recipe names its method (method: <name>)"]
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        return [f"{name}:{line} <root>: not UTF-8 text: {exc.reason}"]
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                try:
                    json.loads(line)
                except (ValueError, RecursionError) as exc:
                    return [f"{name}:{lineno} <root>: invalid JSON: {exc}"]
    return []


def _case_clashes(paths: list[Path], root: Path) -> dict[Path, str]:
    """Names that differ only in case: one name on macOS and Windows checkouts, where one
    would silently replace the other (a submission could shadow a baseline)."""
    groups: dict[tuple[Path, str], list[Path]] = {}
    for path in paths:
        groups.setdefault((path.parent, path.name.casefold()), []).append(path)
    out = {}
    for group in (g for g in groups.values() if len(g) > 1):
        names = [p.relative_to(root) if p.is_relative_to(root) else p for p in group]
        for path, name in zip(group, names, strict=True):
            others = ", ".join(str(n) for n in names if n != name)
            out[path] = f"{name}: differs from {others} only in case"
    return out


def _escapes(sub: Path, root: Path) -> str | None:
    """Why ``sub`` is not a plain ``submissions/<task>/<method>/<model>/`` folder, or None."""
    base = Path(os.path.abspath(Path(root) / "submissions"))
    sub = Path(os.path.abspath(sub))
    if not sub.is_relative_to(base) or len(sub.relative_to(base).parts) != 3:
        return f"not at submissions/<task>/<method>/<model>/ under {root}"
    for folder in (sub.parent.parent, sub.parent, sub):
        if folder.is_symlink():
            one = "" if folder == sub else f" ({folder.relative_to(base.parent)} is one)"
            return f"symbolic links are not allowed{one}"
    if not sub.resolve().is_relative_to(base.resolve()):
        return "resolves outside the submissions folder"
    return None


def validate_submission(sub: Path, root: Path) -> list[str]:
    """Problems of one submission directory (``submissions/<task>/<method>/<model>/``)."""
    problems: list[str] = []
    rel = sub.relative_to(root) if sub.is_relative_to(root) else sub
    for part in rel.parts[-3:]:
        if not SAFE_NAME.fullmatch(part):
            problems.append(
                f"{rel}: directory name {part!r} is not safe as a path "
                "(letters, digits, '.', '_', '-')"
            )
    escape = _escapes(sub, Path(root))
    if escape:
        # nothing below is read: the folder may point anywhere on the machine
        return [*problems, f"{rel}: {escape}"]
    files = sorted(sub.rglob("*"))
    problems += _case_clashes(files, root).values()
    for path in files:
        name = path.relative_to(root) if path.is_relative_to(root) else path
        if path.is_symlink():
            problems.append(f"{name}: symbolic links are not allowed")
            continue
        if path.is_dir():
            problems.append(f"{name}: sub-directories are not allowed")
            continue
        if not path.is_file():  # a FIFO or device: reading it could block CI for ever
            problems.append(f"{name}: not a regular file")
            continue
        if not SAFE_NAME.fullmatch(path.name):
            problems.append(
                f"{name}: file name {path.name!r:.80} is not safe (letters, digits, '.', '_', '-')"
            )
        if path.suffix not in ALLOWED_SUFFIXES:
            problems.append(
                f"{name}: file type {path.suffix or '(none)'} not allowed; "
                f"submissions are data ({', '.join(sorted(ALLOWED_SUFFIXES))})"
            )
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(f"{name}: {size} bytes, over the {MAX_FILE_BYTES} byte limit")
            continue
        problems += _data_problems(path, name)
    for required in REQUIRED:
        if not (sub / required).is_file():
            problems.append(f"{rel / required}: missing (a submission needs {', '.join(REQUIRED)})")
    if problems:
        return problems

    raw, problem = _read_json(sub / "summary.json", rel / "summary.json")
    if problem:
        return [problem]
    if isinstance(raw, dict) and raw.get("schema_version") != SCHEMA_VERSION:
        return [
            f"{rel / 'summary.json'} schema_version: {raw.get('schema_version')!r} is not "
            f"supported (expected {SCHEMA_VERSION})"
        ]
    try:
        summary = Summary.model_validate(raw)
    except ValidationError as exc:
        return [f"{rel / 'summary.json'} {_loc(e)}: {e['msg']}" for e in exc.errors()]
    if summary.task not in registered_tasks():
        problems.append(f"{rel / 'summary.json'} task: unknown task {summary.task!r}")
    if summary.task != rel.parts[-3]:
        problems.append(
            f"{rel / 'summary.json'} task: {summary.task!r} does not match "
            f"its directory {rel.parts[-3]!r}"
        )
    if summary.method != rel.parts[-2]:
        problems.append(
            f"{rel / 'summary.json'} method: {summary.method!r} does not match "
            f"its directory {rel.parts[-2]!r}"
        )

    samples: list[SampleRecord] = []
    seen = set()
    with open(sub / "samples.jsonl", "rb") as fh:  # bytes: pydantic checks the UTF-8 per line
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():  # our writer never leaves one: a line was lost here
                problems.append(f"{rel / 'samples.jsonl'}:{lineno} <record>: empty line")
                continue
            try:
                rec = SampleRecord.model_validate_json(line)
            except ValidationError as exc:
                e = exc.errors()[0]
                problems.append(f"{rel / 'samples.jsonl'}:{lineno} {_loc(e)}: {e['msg']}")
                continue
            key = (rec.seed, rec.prompt_id, rec.sample)
            if key in seen:
                problems.append(
                    f"{rel / 'samples.jsonl'}:{lineno} prompt_id: duplicate record "
                    f"for seed {rec.seed}, prompt {rec.prompt_id}, sample {rec.sample}"
                )
            seen.add(key)
            for metric, sc in rec.scores.items():
                if sc.value is not None and not math.isfinite(sc.value):
                    problems.append(
                        f"{rel / 'samples.jsonl'}:{lineno} scores.{metric}.value: "
                        f"{sc.value} is not a finite number"
                    )
                if sc.value is None and not sc.reason:
                    problems.append(
                        f"{rel / 'samples.jsonl'}:{lineno} scores.{metric}.reason: "
                        "an unscored value needs its reason"
                    )
            if (rec.task, rec.method, rec.model) != (summary.task, summary.method, summary.model):
                problems.append(
                    f"{rel / 'samples.jsonl'}:{lineno} task/method/model: differ from summary.json"
                )
            samples.append(rec)
    if problems:
        return problems
    if len(samples) != summary.n_samples:
        problems.append(
            f"{rel / 'summary.json'} n_samples: says {summary.n_samples}, "
            f"samples.jsonl has {len(samples)}"
        )
    if sorted({s.seed for s in samples}) != sorted(summary.seeds):
        problems.append(
            f"{rel / 'summary.json'} seeds: {summary.seeds} but samples have "
            f"{sorted({s.seed for s in samples})}"
        )
    if summary.task in registered_tasks():
        recomputed = summarise(summary.task, samples)
        for field in ("drift", "task_score", "coherence"):
            claimed, actual = getattr(summary, field), recomputed[field]
            if (claimed is None) != (actual is None):
                problems.append(
                    f"{rel / 'summary.json'} {field}: present in one of summary and samples only"
                )
                continue
            if claimed is None:
                continue
            for part in ("mean", "lo", "hi", "n"):
                a, b = getattr(claimed, part), getattr(actual, part)
                # "not <=" so that a NaN claim is a mismatch too
                if (a is None) != (b is None) or (a is not None and not abs(a - b) <= TOLERANCE):
                    problems.append(
                        f"{rel / 'summary.json'} {field}.{part}: claims {a}, the samples give {b}"
                    )
        for field in ("drift_metric", "drift_judge", "task_metric", "task_judge"):
            claimed = getattr(summary, field)
            if claimed is not None and claimed != recomputed[field]:
                problems.append(
                    f"{rel / 'summary.json'} {field}: claims {claimed!r}, the samples give "
                    f"{recomputed[field]!r}"
                )
        if not abs(summary.unscored_share - recomputed["unscored_share"]) <= TOLERANCE:
            problems.append(
                f"{rel / 'summary.json'} unscored_share: claims "
                f"{summary.unscored_share}, the samples give "
                f"{recomputed['unscored_share']}"
            )
    problems += _comparable(summary, samples, rel, root)
    return problems


def _comparable(summary: Summary, samples: list[SampleRecord], rel: Path, root: Path) -> list[str]:
    """Same task, eval set, judges, seeds and sample counts as the baseline it is ranked with."""
    if summary.method in BASELINE_REFERENCE:
        return []
    task, model = rel.parts[-3], rel.parts[-1]
    for ref_method in BASELINE_REFERENCE:
        ref_dir = root / "submissions" / task / ref_method / model
        if (ref_dir / "summary.json").exists() and not _escapes(ref_dir, root):
            break
    else:
        return [
            f"{rel}: no baseline submission (lora or base) for task {task!r} and model "
            f"{model!r} to compare with"
        ]
    try:
        ref = Summary.model_validate_json((ref_dir / "summary.json").read_bytes())
    except (OSError, ValidationError):
        ref_rel = ref_dir.relative_to(root) if ref_dir.is_relative_to(root) else ref_dir
        return [f"{rel}: its baseline {ref_rel} is not valid itself; fix that one first"]
    out = []
    where = rel / "summary.json"
    if ref.task != summary.task:
        out.append(f"{where} task: {summary.task!r}, the baselines ran {ref.task!r}")
    if ref.eval_set_sha256 != summary.eval_set_sha256:
        out.append(f"{where} eval_set_sha256: not the eval set the baselines used")
    if ref.judges != summary.judges:
        out.append(f"{where} judges: {summary.judges} differ from the baselines' {ref.judges}")
    if ref.seeds != summary.seeds:
        out.append(f"{where} seeds: {summary.seeds} differ from the baselines' {ref.seeds}")
    if ref.n_samples != summary.n_samples:
        out.append(f"{where} n_samples: {summary.n_samples}, the baselines have {ref.n_samples}")
    return out


def submission_dirs(root: Path) -> list[Path]:
    """Every ``submissions/<task>/<method>/<model>/`` folder (links included, so that the
    validator can reject them)."""
    base = Path(root) / "submissions"
    return sorted(p for p in base.glob("*/*/*") if p.is_dir() or p.is_symlink())


def _misplaced(root: Path) -> dict[Path, list[str]]:
    """Files and folders above the submission level, e.g. the old ``<method>/<model>/`` layout
    or a task that is not registered: without this they would be skipped in silence."""
    base = Path(root) / "submissions"
    tasks = set(registered_tasks())
    out: dict[Path, list[str]] = {}
    levels = [sorted(base.glob("*")), sorted(base.glob("*/*")), sorted(base.glob("*/*/*"))]
    for level in levels:
        out.update({path: [why] for path, why in _case_clashes(level, Path(root)).items()})
    for path in levels[0] + levels[1]:
        if path in out:
            continue
        rel = path.relative_to(root)
        if path.is_symlink():
            out[path] = [f"{rel}: symbolic links are not allowed"]
        elif not path.is_dir():
            out[path] = [f"{rel}: a file outside any submissions/<task>/<method>/<model>/ folder"]
        elif path.parent == base and path.name not in tasks:
            out[path] = [
                f"{rel}: {path.name!r} is not a registered task; submissions live at "
                f"submissions/<task>/<method>/<model>/ (tasks: {', '.join(sorted(tasks))})"
            ]
    return out


def validate_all(root: Path) -> dict[Path, list[str]]:
    root = Path(root)
    misplaced = _misplaced(root)
    return {
        **misplaced,
        **{
            sub: validate_submission(sub, root)
            for sub in submission_dirs(root)
            if not any(sub.is_relative_to(p) for p in misplaced)
        },
    }
