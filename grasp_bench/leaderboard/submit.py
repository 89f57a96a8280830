"""``grasp-bench submit RUN``: turn a finished run into leaderboard submissions, one per
method, in the committed layout ``leaderboard/submissions/<task>/<method>/<model>/`` (the same
method on two tasks, or on two models, never collides)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from grasp_bench.core.locks import exclusive
from grasp_bench.core.rundir import RunDir, target_name
from grasp_bench.core.store import (
    TMP_SUFFIX,
    atomic_write_jsonl,
    atomic_write_text,
    read_jsonl,
    replace_dir,
)
from grasp_bench.evaluate.judge.base import judge_label
from grasp_bench.leaderboard.metrics import summarise
from grasp_bench.leaderboard.schema import JudgeScore, SampleRecord, Summary
from grasp_bench.leaderboard.validate import SAFE_NAME, _escapes
from grasp_bench.model.models import DEFAULT_ALIASES, DEFAULT_DIRNAME


def slug(model: str) -> str:
    """A model reference as a safe directory name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.")[:64] or "model"


def eval_set_hash(eval_prompts: list[dict[str, Any]]) -> str:
    blob = json.dumps(
        [[p["prompt_id"], p["split"], p["messages"], p.get("target")] for p in eval_prompts],
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()


def run_submissions(run_dir: Path, board_dir: Path, methods: list[str] | None = None) -> list[Path]:
    """Write a submission per method of the run (or the chosen ones); returns their dirs.

    Holds the board's lock (another submit or build on it fails at once), and each submission
    is written into a staging folder and moved into place whole, so a reader, or a rerun after
    a crash, never finds half of one."""
    with exclusive(board_dir, "leaderboard"):
        return _write_submissions(Path(run_dir), Path(board_dir), methods)


def _write_submissions(run_dir: Path, board_dir: Path, methods: list[str] | None) -> list[Path]:
    run = RunDir(Path(run_dir))
    report = json.loads(run.results.read_text())
    exp = report["meta"]["experiment"]
    task, model = exp["task"], exp["model"]
    if model.lower() in DEFAULT_ALIASES:
        model = DEFAULT_DIRNAME  # the embedded default, named for readers of the board
    eval_prompts = read_jsonl(run.eval_prompts)
    completions = {
        (r["target"], r["prompt_id"], r["sample"]): r["completion"]
        for p in sorted(run.generate.glob("*.jsonl"))
        for r in read_jsonl(p)
    }
    scores = read_jsonl(run.scores)
    targets = report["meta"]["targets"]
    recipes = {m["name"] if isinstance(m, dict) else m: m for m in exp["methods"]}
    written = []
    for method in dict.fromkeys(t["method"] for t in targets):
        if methods and method not in methods:
            continue
        for what, name in (("task", task), ("method", method)):
            # a folder name: it must not climb out of submissions/
            if not SAFE_NAME.fullmatch(name):
                raise ValueError(f"{what} {name!r} is not safe as a directory name")
        mine = [t for t in targets if t["method"] == method]
        names = {t["target"]: t for t in mine}
        grouped: dict[tuple, dict[str, JudgeScore]] = {}
        for rec in scores:
            if rec["target"] not in names:
                continue
            key = (rec["target"], rec["prompt_id"], rec["split"], rec["sample"])
            grouped.setdefault(key, {})[rec["metric"]] = JudgeScore(
                value=rec["value"],
                reason=rec.get("reason") or rec.get("outcome"),
                judge={k: v for k, v in rec["judge"].items() if not isinstance(v, dict)},
            )
        samples = [
            SampleRecord(
                task=task,
                method=method,
                model=model,
                seed=names[target]["seed"],
                prompt_id=pid,
                split=split,
                sample=sample,
                completion_sha256=hashlib.sha256(
                    completions[(target, pid, sample)].encode()
                ).hexdigest(),
                scores=metric_scores,
            )
            for (target, pid, split, sample), metric_scores in sorted(grouped.items())
        ]
        judges = sorted({judge_label(sc.judge) for s in samples for sc in s.scores.values()})
        summary = Summary(
            task=task,
            method=method,
            model=model,
            seeds=sorted({t["seed"] for t in mine}),
            eval_set_sha256=eval_set_hash(eval_prompts),
            judges=judges,
            backend=mine[0]["backend"],
            n_samples=len(samples),
            **summarise(task, samples),
            judge_canaries=report["meta"].get("judge_canaries", []),
            training_data=report["meta"].get("training_data", "not recorded"),
        )
        out = Path(board_dir) / "submissions" / task / method / slug(model)
        escape = _escapes(out, Path(board_dir))
        if escape:  # e.g. a linked folder: replacing it would delete what it points at
            raise ValueError(f"{out}: {escape}")
        staged = _temporary(board_dir, "submission")
        staged.mkdir()
        try:
            atomic_write_jsonl(
                staged / "samples.jsonl", [s.model_dump(mode="json") for s in samples]
            )
            atomic_write_text(
                staged / "summary.json",
                json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
            )
            _copy_recipe(run, recipes.get(method), method, staged)
            card = run.method_card(target_name(method, mine[0]["seed"]))
            if card.exists():
                data = json.loads(card.read_text())
                data.pop("derived_from", None)  # local paths say nothing to readers
                atomic_write_text(
                    staged / "method_card.json",
                    json.dumps(_scrub(data), indent=2, sort_keys=True) + "\n",
                )
            _move_into_place(staged, out, board_dir)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        written.append(out)
    return written


def _move_into_place(staged: Path, out: Path, board_dir: Path) -> None:
    """Replace ``out`` by the complete ``staged`` folder with renames only; a crash between
    them leaves no submission for the method (rerun the submit) and never a partial one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(staged, out)


def _temporary(board_dir: Path, kind: str) -> Path:
    """A fresh hidden name on the board, outside ``submissions/`` (nothing there reads it) and
    named like the store's temporary files, so the next holder of the lock removes it if a
    crash leaves it behind."""
    return Path(board_dir) / f".{kind}.{secrets.token_hex(8)}{TMP_SUFFIX}"


def _scrub(obj: Any) -> Any:
    """Drop absolute local paths from a method card (they leak the submitter's filesystem)."""
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/"):
        return Path(obj).name
    return obj


def _copy_recipe(run: RunDir, ref: Any, method: str, out: Path) -> None:
    config_dir = Path(json.loads(run.marker.read_text())["config_path"]).parent
    recipe = ref.get("recipe") if isinstance(ref, dict) and ref.get("recipe") else None
    # the recipe as run (overrides applied), when the run snapshotted it
    candidates = [run.recipe(method)]
    candidates += [config_dir / recipe] if recipe else []
    candidates += [p / "baselines" / f"{method}.yaml" for p in (config_dir, *config_dir.parents)]
    for path in candidates:
        if path.exists():
            text = path.read_text()
            if path.parent != run.recipes and isinstance(ref, dict) and ref.get("overrides"):
                text += (
                    "\n# overrides from the experiment:\n# " + json.dumps(ref["overrides"]) + "\n"
                )
            atomic_write_text(out / "recipe.yaml", text)
            return
    raise FileNotFoundError(f"no recipe found for method {method!r} of {run}")
