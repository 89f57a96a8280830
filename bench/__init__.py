"""Performance benchmarks: ratios measured in one run (``python -m bench.run_all``)."""
