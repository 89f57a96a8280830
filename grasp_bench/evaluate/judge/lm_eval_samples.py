"""Judge lm-eval's logged samples after the fact, all at once: ``lm_eval ... --predict_only
--log_samples`` then ``grasp-bench judge lm-eval SAMPLES.jsonl``.

Inside lm-eval a document is judged when lm-eval scores it, one at a time; here every answer
of the file goes through the same scoring path (``scoring.score_rows``) and judge cache in one
call, so an LLM judge sees the whole batch at its configured concurrency. The output is
lm-eval-shaped (per metric: mean and stderr over documents) plus the project's per-sample
records.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from grasp_bench.core.yaml_loader import ConfigError

_NAME = re.compile(r"samples_(?P<task>.+?)_\d{4}-\d{2}-\d{2}T[\d\-.]+\.jsonl$")


def lm_eval_task_of(path: Path, given: str | None) -> str:
    """The lm-eval task a samples file belongs to: ``--task`` or lm-eval's file name."""
    if given:
        return given
    found = _NAME.match(Path(path).name)
    if not found:
        raise ConfigError(f"{path}: cannot tell the lm-eval task from the name; pass --task")
    return found.group("task")


def registered_split(lm_task: str) -> tuple[str, str]:
    """(registered task, split) whose ``lm_eval`` mapping names this lm-eval task."""
    from grasp_bench.data.taskspec import get_task, registered_tasks

    for name in registered_tasks():
        entry = get_task(name).lm_eval.get(lm_task)
        if entry:
            return name, entry.split
    raise ConfigError(f"{lm_task}: no registered task runs this lm-eval task")


def sample_rows(path: Path, split: str) -> list[dict[str, Any]]:
    """One scoring row per answer of every logged document (repeats included), built as
    lm-eval's own ``process_results`` builds them."""
    from grasp_bench.evaluate.lm_eval_support import doc_rows

    rows = []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
            doc = sample["doc"]
            answers = sample["filtered_resps"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{line_no}: not an lm-eval logged sample ({exc})") from None
        flat = answers[0] if answers and isinstance(answers[0], list) else answers
        doc = {"id": sample["doc_id"], **doc}  # lm-eval's doc_id where the doc has no id
        rows += [{"target": "lm-eval", **row} for row in doc_rows(doc, flat, split)]
    if not rows:
        raise ConfigError(f"{path}: no logged samples")
    return rows


def aggregate(records: list[dict[str, Any]]) -> dict[str, float]:
    """lm-eval's view: per metric the mean over documents (each the mean of its scored
    answers) and the stderr of that mean; the share of scores left unscored."""
    from grasp_bench.data.taskspec import is_excluded

    per_doc: dict[str, dict[str, list[float]]] = {}
    unscored = 0
    for r in records:
        if r["value"] is None:
            unscored += not is_excluded(r.get("reason"))
            continue
        per_doc.setdefault(r["metric"], {}).setdefault(r["prompt_id"], []).append(r["value"])
    out: dict[str, float] = {}
    for metric, docs in sorted(per_doc.items()):
        means = [sum(v) / len(v) for v in docs.values()]
        mean = sum(means) / len(means)
        var = sum((m - mean) ** 2 for m in means) / (len(means) - 1) if len(means) > 1 else 0.0
        out[metric], out[f"{metric}_stderr"] = mean, math.sqrt(var / len(means))
    out["unscored"] = unscored / max(len(records), 1)  # a share of the scores, exclusions apart
    return out
