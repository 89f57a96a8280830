"""grasp-bench: measure how much a fine-tuning method drifts on unrelated topics and how much
task skill it keeps, against strong baselines on the same tasks, models, judge and seeds."""

__version__ = "0.1.0"
