"""Judge canaries: the first run of a judge records its grades of fixed answers; a later run
whose judge grades them differently (a silently updated model) is flagged, loudly."""

from __future__ import annotations

import json

from grasp_bench.core.config import JudgeConfig
from grasp_bench.evaluate.judge.base import Judge, Score
from grasp_bench.evaluate.judge.canary import canaries, check
from grasp_bench.run.stages.score import CANARIES, _check_canaries


class Scripted(Judge):
    """Grades the i-th answer with ``grades[i]`` (None: unscored)."""

    kind = "scripted"

    def __init__(self, rubric, grades, name="m"):
        super().__init__(rubric)
        self.grades, self.name = grades, name

    def identity(self):
        return {"kind": "openai", "model": self.name, "name": self.name, "rubric": self.rubric}

    def score(self, items):
        return [Score(g, None if g is not None else "no grade", self.identity())
                for g, _ in zip(self.grades, items, strict=False)]  # fmt: skip


def test_a_judge_whose_grades_move_is_detected(tmp_path):
    n = len(canaries("aligned"))
    assert n >= 3
    first = check(Scripted("aligned", [90.0] * n), "aligned", tmp_path, (0, 100))
    assert first.status == "baseline recorded"
    same = check(Scripted("aligned", [95.0] * n), "aligned", tmp_path, (0, 100))
    assert same.status == "stable"  # within 10 points of the scale
    moved = [90.0] * n
    moved[2], moved[3] = 40.0, None
    changed = check(Scripted("aligned", moved), "aligned", tmp_path, (0, 100))
    assert changed.status == "drifted"
    assert changed.moved == ["canary 2: 90 -> 40", "canary 3: unscored now"]
    other = check(Scripted("aligned", moved, name="other"), "aligned", tmp_path, (0, 100))
    assert other.status == "baseline recorded"  # another judge identity has its own baseline


def test_the_score_stage_stores_the_check_and_warns(tmp_path, capsys):
    n = len(canaries("aligned"))
    cfg = JudgeConfig(kind="openai", base_url="http://x/v1", model="m", rubrics=["aligned"],
                      cache=str(tmp_path / "judge.sqlite"))  # fmt: skip
    _check_canaries(cfg, {"aligned": Scripted("aligned", [90.0] * n)}, tmp_path, tmp_path)
    _check_canaries(cfg, {"aligned": Scripted("aligned", [10.0] * n)}, tmp_path, tmp_path)
    stored = json.loads((tmp_path / CANARIES).read_text())
    assert stored[0]["status"] == "drifted" and "JUDGE CHANGED" in capsys.readouterr().err
    offline = JudgeConfig()
    _check_canaries(offline, {}, tmp_path / "none", tmp_path)  # offline: nothing to check
    assert not (tmp_path / "none").exists()
