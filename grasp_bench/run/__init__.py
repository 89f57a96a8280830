"""Orchestration: a run's stages and their order, sweeps on a local or Ray executor,
cost plans and the recipe curve."""
