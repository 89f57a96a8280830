"""The ``grasp-bench`` command line: the app, with every command module's commands on it."""

from __future__ import annotations

import sys

from grasp_bench.cli.base import app

# isort: off
# the order they register is the order ``--help`` lists them: running first, studies last
from grasp_bench.cli import run, data, judge, board, studies  # noqa: F401

# isort: on

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    sys.exit(app())
