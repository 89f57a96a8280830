"""``python -m grasp_bench.cli``."""

from grasp_bench.cli import main

main()
