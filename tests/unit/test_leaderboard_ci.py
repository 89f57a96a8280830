"""The pull-request workflow of the leaderboard: a valid GitHub Actions workflow (checked
against check-jsonschema's vendored schema, no network), running exactly the validation
command the board's "How to submit" documents, which passes on the committed board; and the
committed board is what its submissions build to."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.leaderboard.build import BUILD_COMMAND, VALIDATE_COMMAND, build_board

from ..conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "leaderboard.yml"
BOARD = REPO / "leaderboard"


@pytest.fixture(scope="module")
def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_workflow_is_valid_against_the_github_workflow_schema():
    schema = ["--builtin-schema", "vendor.github-workflows"]
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_validates_exactly_as_documented_then_rebuilds(workflow):
    assert "pull_request" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read"}  # a fork's PR can change nothing
    steps = _steps(workflow)
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(python["with"]["python-version"]) == "3.11"
    runs = [s.get("run", "").strip() for s in steps]
    assert any("pip install -e ." in r for r in runs)
    # the validation step is the documented command itself: its exit status fails the job
    assert VALIDATE_COMMAND in runs and BUILD_COMMAND in runs
    assert runs.index(VALIDATE_COMMAND) < runs.index(BUILD_COMMAND)
    how_to = (BOARD / "README.md").read_text().split("## How to submit", 1)[1]
    assert f"`{VALIDATE_COMMAND}`" in how_to and ".github/workflows/leaderboard.yml" in how_to
    assert f"`{VALIDATE_COMMAND}`" in (BOARD / "index.html").read_text().replace(
        "<code>", "`"
    ).replace("</code>", "`")


def test_the_documented_command_passes_on_the_committed_board(monkeypatch):
    monkeypatch.chdir(REPO)
    args = shlex.split(VALIDATE_COMMAND)
    assert args[0] == "grasp-bench"
    result = CliRunner().invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    assert "submissions/toy/lora/" in result.output and "REJECTED" not in result.output


def test_committed_board_is_what_its_submissions_build_to(tmp_path):
    """Rebuild a copy; the text files must match byte for byte (plots are left out: their
    bytes depend on the matplotlib version)."""
    copy = tmp_path / "leaderboard"
    shutil.copytree(BOARD, copy, ignore=shutil.ignore_patterns("*.png"))
    build_board(copy)
    for name in ("README.md", "index.html", "leaderboard.csv", "board.json"):
        assert (copy / name).read_text() == (BOARD / name).read_text(), (
            f"leaderboard/{name} is stale: run `{BUILD_COMMAND}`"
        )
    for csv in (BOARD / "csv").glob("*.csv"):
        assert (copy / "csv" / csv.name).read_text() == csv.read_text(), f"{csv} is stale"
