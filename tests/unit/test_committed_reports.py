"""Every committed positive-control report that keeps its measurements is what its command makes
of them: rebuilt from the committed ``*-measurements.csv.gz`` alone (no run folder, no training),
its table and readings are the committed bytes. A number on the board that its file no longer
reproduces fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from grasp_bench.studies.implicit_archive import IMPLICIT_ARCHIVE, REMOVAL_ARCHIVE

REPO = Path(__file__).resolve().parents[2]
STUDIES = REPO / "leaderboard" / "positive_control"
REMOVALS = sorted(STUDIES.rglob(REMOVAL_ARCHIVE))
IMPLICITS = sorted(STUDIES.rglob(IMPLICIT_ARCHIVE))


def _name(path: Path) -> str:
    return str(path.parent.relative_to(REPO))


@pytest.mark.parametrize("archive", REMOVALS, ids=_name)
def test_a_removal_report_is_rebuilt_from_its_measurements(archive, tmp_path):
    from grasp_bench.studies.implicit_removal import write_removal_report

    paths = write_removal_report([archive], tmp_path)
    for name in ("removal.csv", "removal.md", "readings.csv"):
        assert (tmp_path / name).read_text() == (archive.parent / name).read_text(), name
    assert paths["measurements"].read_bytes() == archive.read_bytes()


@pytest.mark.parametrize("archive", IMPLICITS, ids=_name)
def test_an_implicit_report_is_rebuilt_from_its_measurements(archive, tmp_path):
    from grasp_bench.studies.implicit_report import cross_report

    cross_report([archive], tmp_path)
    for name in ("implicit.csv", "implicit.md"):
        assert (tmp_path / name).read_text() == (archive.parent / name).read_text(), name
