"""What the board shows, once for both its faces (``page_markdown``: ``README.md``,
``page_html``: ``index.html``): the texts, and each task's table, filters, plots and CSV as
plain data that a face only lays out. Every link is relative to the board's folder."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from grasp_bench.leaderboard.calibration import CalibrationFile, interval_text

VALIDATE_COMMAND = "grasp-bench leaderboard validate leaderboard"
BUILD_COMMAND = "grasp-bench leaderboard build leaderboard"
WORKFLOW = ".github/workflows/leaderboard.yml"
TITLE = "grasp-bench leaderboard"
INTRO = (
    "How far a fine-tuning method drifts on unrelated prompts (the spurious factor it picks "
    "up) against how much of the trained task it keeps, beside plain LoRA on the same task, "
    "model, judges and seeds. Each task has its own metrics, named in its headers; 95% "
    "confidence intervals cluster by prompt and pool seeds."
)
# One step a line; `code` spans become <code> on the page.
HOW_TO_SUBMIT = (
    "Fork the repository and install it: `make install` (or `bash scripts/install.sh`).",
    "Run your method with the baselines' task, model, eval set, judges and seeds: "
    "`grasp-bench run experiments/<yours>.yaml`.",
    "`grasp-bench submit runs/<yours>` writes `leaderboard/submissions/<task>/<method>/<model>/` "
    "(`samples.jsonl`, `summary.json`, `recipe.yaml`, `method_card.json`) and validates it.",
    f"Check it as CI will, `{VALIDATE_COMMAND}`, rebuild the board, `{BUILD_COMMAND}`, and "
    "commit the submission with the rebuilt board.",
    f"Open a pull request. CI (`{WORKFLOW}`) runs `{VALIDATE_COMMAND}`: data only (no "
    "pickles, code, symbolic links, oversize files, unsafe names or paths outside "
    "`submissions/`), the schema, the baselines' task, eval set, judges and seeds, and every "
    "number of `summary.json` recomputed from `samples.jsonl`. A problem fails the job with "
    "the validator's message (file, line or field, and why); otherwise CI rebuilds the board "
    "and attaches it to the run.",
)


@dataclass(frozen=True)
class Link:
    text: str
    href: str | None = None


@dataclass(frozen=True)
class Column:
    header: str
    legend: str = ""  # one line: what the column means


@dataclass(frozen=True)
class Cell:
    """A table cell: its text (a link where ``href``), links after it, notes under it."""

    text: str
    href: str | None = None
    title: str | None = None
    sort: object = None
    links: tuple[Link, ...] = ()
    notes: tuple[Link, ...] = ()

    @property
    def sort_key(self) -> str:
        if self.sort is None or (isinstance(self.sort, float) and pd.isna(self.sort)):
            return ""
        return str(self.sort)


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class Section:
    """One task: its table, the values each row is filtered by, its plots and CSV."""

    task: str
    description: str
    columns: list[Column]
    rows: list[list[Cell]]
    gate: str = ""  # the effect gate's verdict: said before anything is compared
    data_note: str = ""  # what the methods trained on (generated smoke data, a published set)
    filters: dict[str, list[str]] = field(default_factory=dict)  # label -> value of each row
    plots: list[Link] = field(default_factory=list)
    csv: str = ""

    @property
    def anchor(self) -> str:
        return f"task-{self.task}"


@dataclass
class Study:
    """A section built outside the submissions (the positive control's seed-level report):
    its title, its Markdown body, and its files (CSV, plot) relative to the board."""

    anchor: str
    title: str
    markdown: str
    html: str
    files: list[Link]
    plot: str | None = None


def judges_table(files: dict[str, CalibrationFile]) -> Table:
    """Every calibration file's numbers, a row per rubric and per metric."""
    columns = [
        Column("file", "The calibration file (grasp-bench judge calibrate)."),
        Column("task", "The task whose reference set it used (blank: any)."),
        Column("reference", "The human-labelled reference set."),
        Column("rubric or metric", "What was compared with the reference labels."),
        Column("judge", "The judge, by name and its rubric or exemplar version."),
        Column("n", "Reference items graded."),
        Column("Spearman ρ", "Rank correlation of grades and labels (95% CI)."),
        Column("AUROC", "How well the grade separates the labelled classes (95% CI)."),
        Column("Cohen's κ", "Agreement beyond chance on the thresholded label."),
        Column("precision", "Of the items the judge flags, the share labelled so."),
        Column("recall", "Of the items labelled so, the share the judge flags."),
        Column("unscored", "Share of reference items the judge could not grade."),
    ]
    rows = []
    for path, cal in files.items():
        head = [
            Cell(path.rsplit("/", 1)[-1], href=path),
            Cell(cal.task or ""),
            Cell(cal.reference or ""),
        ]
        for rubric, r in sorted(cal.rubrics.items()):
            name = r.judge_name or str(r.judge.get("name") or r.judge.get("model") or "")
            version = r.judge.get("rubric_version") or r.judge.get("version")
            name += f" v{version}" if version is not None else ""  # exemplars / rubric version
            stats = (r.spearman, r.auroc, r.kappa, r.precision, r.recall)
            rows.append(
                [
                    *head,
                    Cell(f"rubric {rubric}"),
                    Cell(name),
                    Cell(str(r.n), sort=r.n),
                    *(Cell(interval_text(s), sort=s.mean if s else None) for s in stats),
                    Cell(
                        "" if r.unscored_share is None else f"{r.unscored_share:.1%}",
                        sort=r.unscored_share,
                    ),
                ]
            )
        for metric, m in sorted(cal.metrics.items()):
            rows.append(
                [
                    *head,
                    Cell(f"metric {metric}"),
                    Cell(""),
                    Cell("" if m.n is None else str(m.n), sort=m.n),
                    Cell(""),
                    Cell(""),
                    Cell(interval_text(m.kappa), sort=m.kappa.mean if m.kappa else None),
                    Cell(
                        interval_text(m.precision), sort=m.precision.mean if m.precision else None
                    ),
                    Cell(interval_text(m.recall), sort=m.recall.mean if m.recall else None),
                    Cell(""),
                ]
            )
    return Table(columns, rows)
