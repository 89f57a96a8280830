"""The stages of a run, one class each (data -> train -> generate -> score -> report; a task
measured teacher-forced measures in place of generate and score)."""

from grasp_bench.run.stages.base import RunData, RunStage, RunState, Target, adapter_identity
from grasp_bench.run.stages.data import DataStage, check_published_refs, prepare_data
from grasp_bench.run.stages.generate import GenerateStage
from grasp_bench.run.stages.report import ReportStage, direction_agreement
from grasp_bench.run.stages.score import MeasureStage, ScoreStage
from grasp_bench.run.stages.train import TrainStage

__all__ = [
    "DataStage", "GenerateStage", "MeasureStage", "ReportStage", "RunData", "RunStage",
    "RunState", "ScoreStage", "Target", "TrainStage", "adapter_identity", "check_published_refs",
    "direction_agreement", "prepare_data", "stages_for",
]  # fmt: skip


def stages_for(evaluated: bool) -> list[RunStage]:
    """The stages of a run, in order; ``evaluated``: the task is measured teacher-forced."""
    middle: list[RunStage] = [MeasureStage()] if evaluated else [GenerateStage(), ScoreStage()]
    return [DataStage(), TrainStage(), *middle, ReportStage()]
