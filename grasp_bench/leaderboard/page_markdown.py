"""The board's Markdown face, ``README.md``: GitHub Markdown tables, each with a legend
under it."""

from __future__ import annotations

import pandas as pd

from grasp_bench.leaderboard.page import (
    BUILD_COMMAND,
    HOW_TO_SUBMIT,
    INTRO,
    TITLE,
    Cell,
    Column,
    Link,
    Section,
    Study,
    Table,
)


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
