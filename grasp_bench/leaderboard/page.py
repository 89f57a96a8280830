"""The board's two faces from one description: ``README.md`` (GitHub Markdown) and
``index.html`` (a static page, no network: sortable columns, model and judge filters, a
legend under each table). Every link is relative to the board's folder."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import pandas as pd
from jinja2 import Environment
from markupsafe import Markup

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


# -- Markdown -------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_link(link: Link) -> str:
    text = _md_escape(link.text)
    return f"[{text}]({link.href})" if link.href else text


def _md_cell(cell: Cell) -> str:
    out = _md_link(Link(cell.text, cell.href))
    links = " · ".join(_md_link(link) for link in cell.links)
    if links:
        out = f"{out} ({links})" if out else links
    for note in cell.notes:
        out += "<br>" + _md_link(note)
    return out.strip()


def _md_table(columns: list[Column], rows: list[list[Cell]]) -> str:
    frame = pd.DataFrame(
        [[_md_cell(c) for c in row] for row in rows], columns=[c.header for c in columns]
    )
    return frame.to_markdown(index=False, disable_numparse=True)


def _md_legend(columns: list[Column]) -> list[str]:
    return [f"- **{_md_escape(c.header)}**: {_md_escape(c.legend)}" for c in columns]


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


def render_markdown(sections: list[Section], judges: Table, studies: list[Study] = ()) -> str:
    md = [
        f"# {TITLE}",
        "",
        f"Built by `{BUILD_COMMAND}` from `submissions/<task>/<method>/<model>/`; do not "
        "edit by hand. The page [index.html](index.html) sorts and filters these tables.",
        "",
        INTRO,
        "",
        "Tasks: "
        + " · ".join(f"[{s.task}](#{s.task.lower()})" for s in sections)
        + "".join(f" · [{st.title}](#{st.anchor})" for st in studies),
        "· [Judges](#judges) · [How to submit](#how-to-submit) · "
        "CSV: [leaderboard.csv](leaderboard.csv)",
        "",
    ]
    for s in sections:
        md += [f"## {s.task}", "", s.description, ""]
        md += [f"**{s.gate}**", ""] if s.gate else []
        md += [s.data_note, ""] if s.data_note else []
        md += [f"CSV: [{s.csv}]({s.csv})", ""]
        md += [_md_table(s.columns, s.rows), "", *_md_legend(s.columns), ""]
        md += [f"![{_md_escape(p.text)}]({p.href})" for p in s.plots] + [""]
    for st in studies:
        md += [f'<a id="{st.anchor}"></a>', "", f"## {st.title}", ""]
        md += ["Files: " + " · ".join(f"[{f.text}]({f.href})" for f in st.files), ""]
        md += [st.markdown, ""]
        md += [f"![{_md_escape(st.title)}]({st.plot})", ""] if st.plot else []
    md += ["## Judges", ""]
    if judges.rows:
        md += [_md_table(judges.columns, judges.rows), ""]
    else:
        md += [
            "No calibration files yet (`grasp-bench judge calibrate` writes them to "
            "`calibration/`).",
            "",
        ]
    md += ["## How to submit", ""]
    md += [f"{i}. {step}" for i, step in enumerate(HOW_TO_SUBMIT, start=1)]
    return "\n".join(md) + "\n"


# -- HTML -----------------------------------------------------------------------------------


def _code(text: str) -> Markup:
    """Escape, then `spans` as <code>."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False)))


_ENV = Environment(
    autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
)
_ENV.filters["code"] = _code
# a filter's label as a data-* attribute that JavaScript's dataset reads back unchanged
_ENV.filters["attr"] = lambda s: re.sub(r"[^a-z0-9]", "", s.lower())

PAGE = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0 2em 2em;color:#222} p,ol{max-width:75em}
nav{position:sticky;top:0;background:#fff;padding:.6em 0;border-bottom:1px solid #ddd;z-index:1}
nav a{display:inline-block;margin:0 .3em .3em 0;padding:.25em .7em;border:1px solid #ccc;
  border-radius:1em;text-decoration:none;color:#124}
nav a:hover{background:#eef3ff} nav .count{color:#777;font-size:85%}
section{margin-top:2em} h2{margin-bottom:.2em} .description{margin-top:0;color:#555}
.filters{margin:.5em 0} .filters label{margin-right:1.2em} .filters a{margin-left:.5em}
.scroll{overflow-x:auto} table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 7px;vertical-align:top} td{white-space:nowrap}
th{cursor:pointer;background:#f3f3f3;text-align:left}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa} td .note{font-size:11px;color:#555}
td .uncalibrated{color:#a33} td .extra{font-size:11px;margin-left:.4em}
dl.legend{font-size:12px;color:#444;display:grid;grid-template-columns:max-content auto;
  gap:.15em 1em;margin:.6em 0} dl.legend dt{font-weight:600} dl.legend dd{margin:0}
figure{display:inline-block;margin:1em 1em 0 0} figure img{max-width:680px;width:100%}
figcaption{font-size:12px;color:#555;max-width:680px} code{background:#f3f3f3;padding:0 .2em}
</style></head><body>
<h1>{{ title }}</h1>
<p>{{ intro }} Click a column header to sort; choose a model or judge to filter rows.</p>
<nav>
{% for s in sections %}
<a href="#{{ s.anchor }}">{{ s.task }} <span class="count">{{ s.rows|length }}</span></a>
{% endfor %}
{% for st in studies %}<a href="#{{ st.anchor }}">{{ st.title }}</a>{% endfor %}
<a href="#judges">Judges</a><a href="#how-to-submit">How to submit</a>
<a href="leaderboard.csv" download>CSV (all tasks)</a><a href="board.json">JSON</a>
</nav>
{% for s in sections %}
<section id="{{ s.anchor }}" class="task">
<h2>{{ s.task }}</h2>
<p class="description">{{ s.description }}</p>
{% if s.gate %}<p class="gate"><strong>{{ s.gate }}</strong></p>{% endif %}
{% if s.data_note %}<p class="data-note">{{ s.data_note }}</p>{% endif %}
<div class="filters">
{% for label, values in s.filters.items() %}
<label>{{ label }} <select data-filter="{{ label|attr }}"><option value="">all</option>
{% for v in values|unique|sort %}<option>{{ v }}</option>{% endfor %}
</select></label>
{% endfor %}
<a class="csv" href="{{ s.csv }}" download>CSV of {{ s.task }}</a>
</div>
{{ table(s.columns, s.rows, s.filters) }}
{% for p in s.plots %}
<figure><img src="{{ p.href }}" alt="{{ p.text }}"><figcaption>{{ p.text }}</figcaption></figure>
{% endfor %}
</section>
{% endfor %}
{% for st in studies %}
<section id="{{ st.anchor }}" class="study">
<h2>{{ st.title }}</h2>
<p>{% for f in st.files %}<a href="{{ f.href }}">{{ f.text }}</a> {% endfor %}</p>
{{ st.html }}
{% if st.plot %}<figure><img src="{{ st.plot }}" alt="{{ st.title }}"></figure>{% endif %}
</section>
{% endfor %}
<section id="judges">
<h2>Judges</h2>
{% if judges.rows %}
<p>Each judge's agreement with human labels, from <code>calibration/*.json</code>.</p>
{{ table(judges.columns, judges.rows, {}) }}
{% else %}
<p>No calibration files yet (<code>grasp-bench judge calibrate</code> writes them to
<code>calibration/</code>).</p>
{% endif %}
</section>
<section id="how-to-submit">
<h2>How to submit</h2>
<ol>
{% for step in steps %}<li>{{ step|code }}</li>
{% endfor %}
</ol>
</section>
<script>
document.querySelectorAll("section.task").forEach(section => {
  const selects = [...section.querySelectorAll("select[data-filter]")];
  const apply = () => section.querySelectorAll("tbody tr").forEach(tr => {
    tr.hidden = selects.some(s => s.value && tr.dataset[s.dataset.filter] !== s.value);
  });
  selects.forEach(s => s.addEventListener("change", apply));
});
const compare = (a, b) => typeof a === typeof b ? (a > b) - (a < b)
  : (typeof a === "number" ? -1 : 1);
document.querySelectorAll("table.board").forEach(table => {
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((th, col) => th.addEventListener("click", () => {
    const asc = !th.classList.contains("sorted-asc");
    heads.forEach(h => h.classList.remove("sorted-asc", "sorted-desc"));
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    const key = tr => { const c = tr.cells[col]; const t = c.dataset.sort ?? c.textContent.trim();
                        const n = parseFloat(t); return isNaN(n) ? t : n; };
    [...table.tBodies[0].rows].sort((a, b) => compare(key(a), key(b)) * (asc ? 1 : -1))
      .forEach(tr => table.tBodies[0].appendChild(tr));
  }));
});
</script></body></html>
"""
)

TABLE = _ENV.from_string(
    """{% macro cell(c) -%}
<td
  {%- if c.sort is not none %} data-sort="{{ c.sort_key }}"{% endif %}
  {%- if c.title %} title="{{ c.title }}"{% endif %}>
  {%- if c.href %}<a href="{{ c.href }}">{{ c.text }}</a>{% else %}{{ c.text }}{% endif %}
  {%- for l in c.links %} <a class="extra" href="{{ l.href }}">{{ l.text }}</a>{% endfor %}
  {%- for n in c.notes %}<div class="note">
    {%- if n.href %}<a href="{{ n.href }}">{{ n.text }}</a>
    {%- else %}<span class="uncalibrated">{{ n.text }}</span>{% endif %}</div>
  {%- endfor %}</td>
{%- endmacro %}
<div class="scroll"><table class="board"><thead><tr>
{% for c in columns %}<th title="{{ c.legend }}">{{ c.header }}</th>{% endfor %}
</tr></thead><tbody>
{% for row in rows %}
{% set i = loop.index0 %}
<tr
  {%- for label, values in filters.items() %} data-{{ label|attr }}="{{ values[i] }}"{% endfor %}>
{% for c in row %}{{ cell(c) }}{% endfor %}
</tr>
{% endfor %}
</tbody></table></div>
<dl class="legend">
{% for c in columns %}<dt>{{ c.header }}</dt><dd>{{ c.legend }}</dd>
{% endfor %}
</dl>
"""
)


def _table(columns: list[Column], rows: list[list[Cell]], filters: dict[str, list[str]]) -> Markup:
    return Markup(TABLE.render(columns=columns, rows=rows, filters=filters))


def render_html(sections: list[Section], judges: Table, studies: list[Study] = ()) -> str:
    return PAGE.render(
        title=TITLE,
        intro=INTRO,
        sections=sections,
        studies=studies,
        judges=judges,
        steps=HOW_TO_SUBMIT,
        table=_table,
    )
