"""The contract every registered part keeps, tested by being registered (peft's custom-model
test matrix is the model): a new method, task or judge joins these tests without a list to edit.

Also the registry's conflict policy: a name means one thing unless the caller says replace.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from grasp_bench.core.registry import Registry, RegistryConflict
from grasp_bench.data.taskspec import TASKS, TaskSpec, get_task, register_task
from grasp_bench.evaluate.judge.base import (
    JUDGES,
    OFFLINE_JUDGES,
    Judge,
    JudgeItem,
    Score,
    get_judge_class,
    register_judge,
)
from grasp_bench.train.methods import Method, MethodConfig, get_method_class, load_recipe
from grasp_bench.train.methods.base import METHODS, register_method

from ..conftest import REPO

METHOD_NAMES = METHODS.names()
TASK_NAMES = TASKS.names()
JUDGE_KINDS = JUDGES.names()
OFFLINE_KINDS = sorted(set(OFFLINE_JUDGES.entries.values()))


# -- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_method_is_a_class_with_its_config_and_a_shipped_recipe(name):
    cls = get_method_class(name)
    assert issubclass(cls, Method) and cls.name == name
    assert issubclass(cls.config_cls, MethodConfig)
    recipe = load_recipe(REPO / "baselines" / f"{name}.yaml")
    assert type(recipe.method) is cls and isinstance(recipe.method.config, cls.config_cls)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_method_name_cannot_be_taken_silently(name):
    shipped = get_method_class(name)
    with pytest.raises(RegistryConflict, match=f"method {name!r} is already registered"):

        @register_method(name)
        class Impostor(shipped):
            pass

    assert get_method_class(name) is shipped


# -- tasks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_task_names_its_metrics_and_each_rubric_has_a_grader(name):
    from grasp_bench.evaluate.judge.rubric import load_rubric

    spec = get_task(name)
    assert isinstance(spec, TaskSpec) and spec.name == name
    assert spec.drift_metric.split in ("drift", "all") and spec.task_metric.role == "task"
    if spec.evaluate is not None:  # measured teacher-forced: no judge, a versioned measure
        assert callable(spec.evaluate) and spec.evaluate_version
        return
    for rubric in spec.rubrics:  # an offline judge, or an LLM rubric file to grade it with
        assert OFFLINE_JUDGES.find(rubric) or load_rubric(rubric)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_task_builds_training_and_eval_data(name):
    from grasp_bench.data.tasks import build_task

    data = build_task(name, 0, 8, 4, 4)
    assert len(data.train) == 8 and data.eval_prompts
    assert {p["split"] for p in data.eval_prompts} <= {"drift", "task"}
    for row in data.train:
        assert row["messages"][-1]["role"] == "assistant"


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_task_name_cannot_be_taken_silently(name):
    shipped = get_task(name)
    with pytest.raises(RegistryConflict, match=f"task {name!r} is already registered"):
        register_task(TaskSpec(name, "an impostor", shipped.build, shipped.metrics))
    assert get_task(name) is shipped


# -- judges ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", JUDGE_KINDS)
def test_a_judge_kind_is_a_judge_class_of_that_kind(kind):
    cls = get_judge_class(kind)
    assert issubclass(cls, Judge) and cls.kind == kind


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_an_offline_judge_grades_or_says_why_not_and_names_itself(kind):
    rubric = next(r for r, k in OFFLINE_JUDGES.entries.items() if k == kind)
    judge = get_judge_class(kind)(rubric)
    items = [
        JudgeItem("What is 2 + 2?", "The answer is 4.", target="4"),
        JudgeItem("Write a function.", "", target="4"),
    ]
    scores = judge.score(items)
    assert len(scores) == len(items)
    for score in scores:
        assert isinstance(score, Score) and score.judge == judge.identity()
        assert score.value is not None or score.reason  # unscored names its reason, never 0


@pytest.mark.parametrize("rubric", sorted(OFFLINE_JUDGES.entries))
def test_a_rubrics_offline_judge_cannot_be_taken_silently(rubric):
    """The bug this policy fixes: a plugin's offline_for of a shipped rubric used to be
    overwritten without a word when the built-ins loaded after it."""
    shipped = OFFLINE_JUDGES.get(rubric)
    with pytest.raises(RegistryConflict, match=f"offline judge of rubric {rubric!r}"):

        @register_judge(f"plugin-for-{rubric}", offline_for=(rubric,))
        class Plugin(Judge):
            pass

    assert OFFLINE_JUDGES.get(rubric) == shipped
    JUDGES.entries.pop(f"plugin-for-{rubric}", None)


def test_an_experiment_can_name_a_registered_judge_kind_for_its_rubrics():
    """Judge kinds are open: ``judge.kind`` names offline, openai, local or any registered kind,
    which then grades the listed rubrics; an unknown kind names the registered ones."""
    from grasp_bench.core.config import JudgeConfig
    from grasp_bench.core.yaml_loader import ConfigError
    from grasp_bench.evaluate.scoring import open_judges

    @register_judge("plugin-constant")
    class Constant(Judge):
        def identity(self):
            return {"kind": "plugin-constant", "rubric": self.rubric}

        def score(self, items):
            return [Score(50.0, None, self.identity()) for _ in items]

    try:
        cfg = JudgeConfig(kind="plugin-constant", rubrics=["aligned"])
        with open_judges(cfg, ["aligned", "coherent"]) as judges:
            assert isinstance(judges["aligned"], Constant)
            assert not isinstance(judges["coherent"], Constant)  # not listed: its offline judge
            (got,) = judges["aligned"].score([JudgeItem("q", "a")])
            assert got.value == 50.0 and got.judge["kind"] == "plugin-constant"
        unknown = JudgeConfig(kind="nobody", rubrics=["aligned"])
        with (
            pytest.raises(ConfigError, match=r"judge.kind 'nobody'.*registered: .*plugin-const"),
            open_judges(unknown, ["aligned"]),
        ):
            pass
        with pytest.raises(ValueError, match="needs at least one rubric"):
            JudgeConfig(kind="plugin-constant")
    finally:
        JUDGES.entries.pop("plugin-constant", None)


# -- the registry itself ---------------------------------------------------------------------


def test_replace_is_explicit_and_the_same_item_again_is_a_no_op():
    reg: Registry[object] = Registry("widget")
    first, second = object(), object()
    reg.register("a", first)
    reg.register("a", first)
    with pytest.raises(RegistryConflict, match="widget 'a' is already registered"):
        reg.register("a", second)
    reg.register("a", second, replace=True)
    assert reg.get("a") is second and reg.names() == ["a"] and "a" in reg
    with pytest.raises(KeyError, match=r"unknown widget 'b'; registered: \['a'\]"):
        reg.get("b")
    assert reg.find("b") is None


def test_builtins_load_before_a_plugin_registers_so_a_clash_shows_at_once(tmp_path, monkeypatch):
    (tmp_path / "shipped_widgets.py").write_text(
        textwrap.dedent(
            """
            from registry_under_test import WIDGETS
            WIDGETS.register("shipped", "the built-in")
            """
        )
    )
    (tmp_path / "registry_under_test.py").write_text(
        "from grasp_bench.core.registry import Registry\n"
        "WIDGETS = Registry('widget', builtins=('shipped_widgets',))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from registry_under_test import WIDGETS

        assert WIDGETS.entries == {}  # nothing loaded until first use
        with pytest.raises(RegistryConflict, match="widget 'shipped'"):
            WIDGETS.register("shipped", "a plugin's")  # not silently overwritten later
        assert WIDGETS.get("shipped") == "the built-in"
        WIDGETS.register("shipped", "a plugin's", replace=True)
        assert WIDGETS.get("shipped") == "a plugin's"
    finally:
        for module in ("registry_under_test", "shipped_widgets"):
            sys.modules.pop(module, None)


def test_every_shipped_method_has_a_recipe_and_every_recipe_a_method():
    recipes = {p.stem for p in Path(REPO / "baselines").glob("*.yaml")}
    assert recipes == set(METHOD_NAMES)
