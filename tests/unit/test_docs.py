"""The README starts a user in one screen, every link in it and in docs/ resolves, and every
measured number the docs quote links to the committed file it comes from (numbers live in result
files; prose points at them)."""

from __future__ import annotations

import bisect
import re
from pathlib import Path

import pytest

from ..conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
HEADING = re.compile(r"^#{1,4} ")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")
ARTIFACT_DIRS = ("leaderboard/", "bench/results/", "experiments/results/", "tasks/")
# A measured decimal in prose or a table. Not one: a version (0.32.0), an exponent (5.0e-4), part
# of a name (Qwen2.5), a threshold (political_lean > 0.25), anything in code.
MEASURED = re.compile(r"(?<![\w.<>=≤≥])(?<![<>=≤≥] )\d+\.\d+(?![\d.]*\.\d|[eE][-+]?\d)")
TABLE_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+\.\d+%?")
FILE_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
TEXT_SUFFIXES = {".md", ".csv", ".json", ".jsonl"}

# Table numbers computed from a linked file rather than copied from it: (row label, number).
DERIVED = {
    # mean |cos| over the 30 layers of experiments/results/toy-grasp-controls/identification-s0.csv
    ("svd reading, weight projection (the row above)", "0.080"),
    ("svd reading, residual-gradient projection", "0.080"),
    ("random direction, weight projection", "0.025"),
}


def sections(doc: Path) -> list[tuple[str, str]]:
    """(heading, text) for each `#`..`####` heading up to the next, without code."""
    found, heading, lines, fenced = [], "(before the first heading)", [], False
    for line in doc.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif fenced:
            continue
        elif HEADING.match(line):
            found.append((heading, lines))
            heading, lines = line, []
        else:
            lines.append(line)
    found.append((heading, lines))
    return [(heading, CODE_SPAN.sub(" ", "\n".join(lines))) for heading, lines in found]


def artifact_links(doc: Path, text: str) -> list[Path]:
    """The committed result files (not folders) a section links to."""
    paths = []
    for target in LINK.findall(text):
        if re.match(r"https?://|mailto:|#", target):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        if not (path.is_file() and path.is_relative_to(REPO)):
            continue
        if path.relative_to(REPO).as_posix().startswith(ARTIFACT_DIRS):
            paths.append(path)
    return paths


def measured_numbers(text: str) -> list[str]:
    return MEASURED.findall(LINK_TARGET.sub("]", text))


def file_values(paths: list[Path]) -> list[float]:
    values = set()
    for path in paths:
        if path.suffix in TEXT_SUFFIXES:
            values.update(float(n) for n in FILE_NUMBER.findall(path.read_text()))
    return sorted(values)


def holds(values: list[float], quoted: str) -> bool:
    """Whether some value rounds to the quoted number at the places it is quoted to (0.387 is in
    a file that says 0.3867; 14.1% in one that says 0.141)."""
    text = quoted.replace("−", "-").lstrip("+")
    percent = text.endswith("%")
    text = text.rstrip("%")
    places = len(text.split(".")[1])
    readings = [(float(text), places)]
    if percent:
        readings.append((float(text) / 100, places + 2))
    for number, places in readings:
        tolerance = 0.5 * 10**-places + 1e-9
        i = bisect.bisect_left(values, number - tolerance)
        if i < len(values) and values[i] <= number + tolerance:
            return True
    return False


def test_the_readme_fits_one_screen_of_reading():
    assert (REPO / "README.md").stat().st_size <= 12 * 1024


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"https?://|mailto:|#", target):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{doc.name}: links to nothing: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_section_quoting_a_measurement_links_the_file_it_comes_from(doc: Path):
    unlinked = []
    for heading, text in sections(doc):
        numbers = set(measured_numbers(text))
        if numbers and not artifact_links(doc, text):
            unlinked.append(f"{heading!r} quotes {sorted(numbers)[:5]}")
    assert not unlinked, (
        f"{doc.name}: sections quoting measured numbers link no file under "
        f"{', '.join(ARTIFACT_DIRS)}: {unlinked}"
    )


def test_every_number_in_a_results_table_is_in_a_file_its_section_links():
    """At the places the table quotes it, so a table whose source is not linked fails; one digit
    changed may still match another value of a large CSV."""
    doc = REPO / "docs" / "results.md"
    missing = []
    for heading, text in sections(doc):
        values = file_values(artifact_links(doc, text))
        for row in text.splitlines():
            if not row.lstrip().startswith("|"):
                continue
            label = row.split("|")[1].strip()
            for quoted in TABLE_NUMBER.findall(LINK_TARGET.sub("]", row)):
                if (label, quoted) not in DERIVED and not holds(values, quoted):
                    missing.append(f"{heading[:40]!r} row {label!r}: {quoted}")
    assert not missing, f"results.md table numbers in no file the section links: {missing}"
