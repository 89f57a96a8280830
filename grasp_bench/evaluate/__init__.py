"""Completions, judges, scores and a run's report: everything that turns a trained
adapter into numbers."""
