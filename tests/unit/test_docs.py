"""The README starts a user in one screen and every link in it and in docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


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
