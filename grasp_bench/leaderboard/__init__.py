"""The public trade-off leaderboard: result schemas, submissions, validation and the board."""

from grasp_bench.leaderboard.schema import SCHEMA_VERSION, SampleRecord, Summary

__all__ = ["SCHEMA_VERSION", "SampleRecord", "Summary"]
