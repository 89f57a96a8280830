"""The lm-eval task folders, written from the registered task specs (``grasp-bench tasks export``).

A task's spec is the one source of what lm-eval runs: each ``LmEvalTask`` of its ``lm_eval``
becomes a folder ``<out>/<lm-eval name>/`` holding the YAML (with its ``metric_list``: the
spec's metrics on that split plus ``unscored`` and, where a metric has outcome rules,
``excluded``), ``utils.py`` (the shared ``process_results`` of that split, importing the
plugin modules that register a plugin task), a README, and the generated eval set where the
entry has one; beside them the shared ``_grasp_template_yaml``. ``check`` renders the same
files and names every one that is missing or differs, so a spec and its folder cannot drift
apart (``make test`` runs it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grasp_bench.core.store import atomic_write_text
from grasp_bench.data.taskspec import LmEvalTask, get_task, registered_tasks
from grasp_bench.evaluate.lm_eval_support import metrics_of

TEMPLATE = "_grasp_template_yaml"
TEMPLATE_TEXT = """\
# Shared by every grasp_* task (lm-eval `include:`). One chat-formatted question per document.
# until: [] on purpose: lm-eval then stops at the model's EOS and an API server at its own end
# of turn, so the chat template ends an answer, whatever the model (no hard-coded ChatML
# marker; leaving until out would make lm-eval stop at the first blank line).
tag: grasp
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: ""
generation_kwargs:
  until: []
  max_gen_toks: 128
  do_sample: false
  temperature: 0.0
"""
EVAL_FILE = "eval.jsonl"


@dataclass(frozen=True)
class Folder:
    """One lm-eval task to write: its name, the registered task and split it runs, and the
    plugin modules its ``utils.py`` must import (none for a shipped task)."""

    name: str
    task: str
    entry: LmEvalTask
    plugins: tuple[str, ...] = ()


def folders(tasks: list[str] | None = None, plugins: tuple[str, ...] = ()) -> list[Folder]:
    """Every generate task the registered specs name (or only ``tasks``' ones), once each: an
    lm-eval task two specs share (the emergent-misalignment questions) is written from the first
    registered, and the two must ask for the same metrics. ``plugins`` are imported into the
    ``utils.py`` of tasks that are not shipped."""
    from grasp_bench.core.registry import TASKS

    shipped = set(TASKS.builtin_names())
    out: dict[str, Folder] = {}
    for task in tasks or registered_tasks():
        spec = get_task(task)
        for name, entry in spec.lm_eval.items():
            if entry.kind != "generate_until":
                continue  # written by its study's own command
            mods = () if task in shipped else plugins
            first = out.get(name)
            if first is None:
                out[name] = Folder(name, task, entry, mods)
            elif _metric_names(first) != _metric_names(Folder(name, task, entry)):
                raise ValueError(
                    f"lm-eval task {name}: {first.task} and {task} ask for different metrics"
                )
    return list(out.values())


def _metric_names(folder: Folder) -> list[str]:
    return [m["metric"] for m in metric_list(folder)]


def metric_list(folder: Folder) -> list[dict[str, object]]:
    """The YAML's metric_list: the spec's metrics on the split, then the counts."""
    metrics = metrics_of(folder.task, folder.entry.split)
    rows = [{"metric": m.name, "higher_is_better": m.higher_is_better} for m in metrics]
    if any(m.outcomes for m in metrics):
        rows.append({"metric": "excluded", "higher_is_better": False})
    rows.append({"metric": "unscored", "higher_is_better": False})
    return rows


_SAMPLED_NOTE = """\
# Free-form drift questions follow the field's protocol: sampled at temperature 1, {n} answers
# per question (repeats), each scored; API models need --gen_kwargs seed=None, or lm-eval sends
# one fixed seed with every request and gets the same answer back.
"""


def yaml_text(folder: Folder) -> str:
    e = folder.entry
    text = f"# {e.summary}\n" + (_SAMPLED_NOTE.format(n=e.repeats) if e.sampled else "")
    text += (
        f"include: ../{TEMPLATE}\n"
        f"task: {folder.name}\n"
        "custom_dataset: !function utils.load_eval\n"
        "generation_kwargs:\n"
        "  until: []\n"
        f"  max_gen_toks: {e.max_gen_toks}\n"
        f"  do_sample: {'true' if e.sampled else 'false'}\n"
        f"  temperature: {1.0 if e.sampled else 0.0}\n"
    )
    if e.sampled:
        text += (
            "# several sampled answers per question, all scored: the document's value is their"
            " mean\n"
            f"repeats: {e.repeats}\n"
            "filter_list:\n"
            "  - name: samples\n"
            "    filter:\n"
            "      - function: take_first_k\n"
            f"        k: {e.repeats}\n"
        )
    text += "process_results: !function utils.process_results\nmetric_list:\n"
    for m in metric_list(folder):
        text += (
            f"  - metric: {m['metric']}\n"
            "    aggregation: mean\n"
            f"    higher_is_better: {'true' if m['higher_is_better'] else 'false'}\n"
        )
    return text + f"metadata:\n  version: {e.version}\n"


def utils_text(folder: Folder) -> str:
    plugins = f", plugins={folder.plugins!r}" if folder.plugins else ""
    return (
        f'"""lm-eval hooks of {folder.name}: the {folder.entry.split} split of the registered task'
        f" {folder.task!r}.\n\n"
        "Written by `grasp-bench tasks export` from the task's spec; the shared logic is in\n"
        'grasp_bench.evaluate.lm_eval_support."""\n\n'
        "from pathlib import Path\n\n"
        "from grasp_bench.evaluate import lm_eval_support\n\n"
        f'load_eval = lm_eval_support.loader(Path(__file__).parent / "{EVAL_FILE}")\n'
        "process_results = lm_eval_support.process_results_for("
        f'"{folder.task}", "{folder.entry.split}"{plugins})\n'
    )


def readme_text(folder: Folder) -> str:
    e = folder.entry
    source = (
        "generated by the task's generator: `grasp-bench tasks export --check` (in `make test`)"
        " fails if the file and the generator differ"
        if e.eval_rows
        else "a committed source file, versioned with the task"
    )
    about = e.summary + ("\n\n" + e.details if e.details else "")
    return (
        f"# {folder.name}\n\n"
        f"<!-- Written by `grasp-bench tasks export` from the registered task `{folder.task}`\n"
        "     (its spec's `lm_eval` entry): edit the spec, not this file. -->\n\n"
        f"{about}\n\n"
        f"- Runs the {e.split} split of the registered task `{folder.task}`"
        f"{' (each document says which split it is in)' if e.split == 'all' else ''}.\n"
        f"- Data: `{EVAL_FILE}` beside this file, {source}.\n"
        "- Judge: `process_results` calls the project's judge, chosen by the environment\n"
        "  (`GRASP_JUDGE=offline`, the default, or `openai` with `GRASP_JUDGE_BASE_URL` and\n"
        "  `GRASP_JUDGE_MODEL`; see `grasp_bench/evaluate/lm_eval_support.py`). Unscorable answers"
        " are left out of the\n"
        "  metric (never counted as 0) and counted in `unscored`.\n"
        "- Every metric is a per-document value aggregated with `mean`, so lm-eval reports its"
        " stderr.\n\n"
        "Run: `lm_eval --model local-chat-completions --apply_chat_template --tasks"
        f" {folder.name} --include_path tasks ...`\n\n"
        "## Changelog\n" + "".join(f"- {line}\n" for line in e.changelog)
    )


def eval_text(folder: Folder) -> str | None:
    rows = folder.entry.eval_rows
    if rows is None:
        return None
    return "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows())


def render(folder: Folder) -> dict[str, str]:
    """Relative path -> text of every file the export writes for one lm-eval task."""
    files = {
        f"{folder.name}/{folder.name}.yaml": yaml_text(folder),
        f"{folder.name}/utils.py": utils_text(folder),
        f"{folder.name}/README.md": readme_text(folder),
    }
    data = eval_text(folder)
    if data is not None:
        files[f"{folder.name}/{EVAL_FILE}"] = data
    return files


def rendered(tasks: list[str] | None = None, plugins: tuple[str, ...] = ()) -> dict[str, str]:
    return _rendered(folders(tasks, plugins))


def _rendered(found: list[Folder]) -> dict[str, str]:
    files = {TEMPLATE: TEMPLATE_TEXT}
    for folder in found:
        files.update(render(folder))
    return files


def export(out: Path, tasks: list[str] | None = None, plugins: tuple[str, ...] = ()) -> list[Path]:
    """Write every file that is missing or differs; returns the files written."""
    written = []
    for rel, text in rendered(tasks, plugins).items():
        path = Path(out) / rel
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            written.append(path)
    return written


def check(out: Path, tasks: list[str] | None = None, plugins: tuple[str, ...] = ()) -> list[str]:
    """What differs between the specs and the folders under ``out`` (empty when in step)."""
    found = folders(tasks, plugins)
    problems = []
    for rel, text in _rendered(found).items():
        path = Path(out) / rel
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != text:
            problems.append(f"{path}: differs from what the spec writes")
    for f in found:  # eval sets no generator makes: committed source files lm-eval reads
        path = Path(out) / f.name / EVAL_FILE
        if f.entry.eval_rows is None and not path.exists():
            problems.append(f"{path}: missing (a committed source, not generated)")
    return problems
