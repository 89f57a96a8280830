"""The board's HTML face, ``index.html``: a static page, no network, with sortable columns,
model and judge filters and a legend under each table."""

from __future__ import annotations

import html
import re

from jinja2 import Environment
from markupsafe import Markup

from grasp_bench.leaderboard.page import (
    HOW_TO_SUBMIT,
    INTRO,
    TITLE,
    Cell,
    Column,
    Section,
    Study,
    Table,
)


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
