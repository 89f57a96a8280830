"""The board's study sections: the implicit-factor positive control (its effect gate and
pooled metrics) and the removal studies (the dev teacher's, each held-out teacher's, pooled),
read from the reports ``grasp-bench implicit-report`` / ``implicit-removal`` wrote into the
board's ``positive_control/`` folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from grasp_bench.leaderboard.page import Link, Study
from grasp_bench.studies.implicit_archive import IMPLICIT_ARCHIVE, REMOVAL_ARCHIVE

POSITIVE_CONTROL = "positive_control"  # grasp-bench implicit-report ... --out <board>/<this>


def positive_control_studies(root: Path) -> list[Study]:
    """The implicit-factor positive control, where its pooled report sits in the board: the
    gate's verdict first, then every metric pooled over teachers with hierarchical intervals."""
    import html as html_lib

    from markupsafe import Markup

    folder = root / POSITIVE_CONTROL
    if not (folder / "implicit.json").exists():
        return []
    payload = json.loads((folder / "implicit.json").read_text())
    table = pd.DataFrame(payload["rows"])
    gates = payload["gates"]
    verdicts = [f"<li><b>{html_lib.escape(k)}</b>: {html_lib.escape(v['verdict'])}</li>"
                for k, v in gates.items()]  # fmt: skip
    pooled = table[table.teacher == "pooled"].copy()
    for col in ("mean", "lo", "hi"):
        pooled[col] = pooled[col].map(lambda x: f"{x:.3f}")
    wanted = ("metric", "method", "mean", "lo", "hi", "n_teacher", "n_seed", "n_prompt_id")
    ranked = gates.get("pooled", {}).get("passed", False)  # no comparison without the effect
    extra = ("vs_lora", "vs_lora_lo", "vs_lora_hi") if ranked else ()
    keep = [c for c in (*wanted, *extra) if c in pooled]
    body = (
        "<p>Effect gate (plain LoRA vs the task-only control, paired hierarchical bootstrap):</p>"
        f"<ul>{''.join(verdicts)}</ul>"
        + pooled[keep].to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="")
    )
    md = (folder / "implicit.md").read_text().replace("\n# ", "\n### ").replace("\n## ", "\n### ")
    md = md.split("\n", 1)[1] if md.startswith("# ") else md
    files = [
        Link(name, f"{POSITIVE_CONTROL}/{name}")
        for name in ("implicit.md", "implicit.csv", "implicit.json", IMPLICIT_ARCHIVE)
        if (folder / name).exists()
    ]
    plot = f"{POSITIVE_CONTROL}/implicit.png"  # the report always writes it
    studies = [
        Study(
            anchor="positive-control",
            title="Positive control: implicit factor",
            markdown=md.strip(),
            html=Markup(body),
            files=files,
            plot=plot,
        )
    ]
    if (folder / "removal.md").exists():
        studies.append(_removal_study(folder, ranked))
    for held_out in sorted(folder.glob("held-out-*/removal.md")):  # teachers the rule never saw
        studies.append(_removal_study(held_out.parent, ranked, held_out.parent.name))
    return studies


def _removal_study(folder: Path, ranked: bool, held_out: str = "") -> Study:
    """What removes the implicit factor (GRASP removals and directions against plain LoRA and
    the control): shown only where the effect gate passed, as every comparison on the board.
    ``held_out``: the folder of a held-out teacher's report (``held-out-<teacher>``)."""
    from markupsafe import Markup

    anchor = f"removal-{held_out}" if held_out else "removal"
    which = held_out.removeprefix("held-out-")
    title = "Positive control: what removes it"
    if which == "pooled":
        title += " (held-out teachers pooled)"
    elif which:
        title += f" (held-out teacher {which})"
    prefix = f"{POSITIVE_CONTROL}/{held_out}/" if held_out else f"{POSITIVE_CONTROL}/"
    if not ranked:
        text = "Not shown: the positive control's effect gate did not pass, so nothing is compared."
        return Study(anchor, title, text, Markup(f"<p>{text}</p>"), [])
    md = (folder / "removal.md").read_text().replace("\n## ", "\n### ")
    md = md.split("\n", 1)[1] if md.startswith("# ") else md
    table = pd.read_csv(folder / "removal.csv")
    cols = [c for c in ("method", "removal", "source", "k", "transfer_mean", "transfer_lo",
                        "transfer_hi", "reduction", "task_kl_mean", "task_kl_vs_lora",
                        "base_fit_mean", "n_seeds")
            if c in table]  # fmt: skip
    files = [
        Link(name, f"{prefix}{name}")
        for name in ("removal.md", "removal.csv", "readings.csv", REMOVAL_ARCHIVE)
        if (folder / name).exists()
    ]
    return Study(
        anchor=anchor,
        title=title,
        markdown=md.strip(),
        html=Markup(table[cols].to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="")),
        files=files,
        plot=f"{prefix}removal.png",  # the report always writes it
    )
