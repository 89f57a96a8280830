from pathlib import Path

import pytest
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.core.config import load_experiment
from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.run.pipeline import load_recipes
from grasp_bench.train.methods import load_recipe

from ..conftest import REPO


def write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_demo_config_and_recipes_are_valid():
    exp = load_experiment(REPO / "experiments" / "toy-demo.yaml")
    labels = [r.label for r in load_recipes(exp)]
    assert labels == ["base", "lora", "grasp"]


def test_unknown_key_names_file_line_and_field(tmp_path):
    cfg = write(tmp_path / "e.yaml", "name: x\nmethods: [lora]\ntrain:\n  steps: 3\n  lr_rate: 1\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(cfg)
    assert f"{cfg}:5 train.lr_rate: unknown key" in str(err.value)


def test_bad_value_names_the_line(tmp_path):
    cfg = write(tmp_path / "e.yaml", "name: x\nmethods: [lora]\nseeds: [0]\ntrain:\n  steps: -1\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(cfg)
    assert f"{cfg}:5 train.steps: Input should be greater than 0" in str(err.value)


def test_recipe_error_names_recipe_file_line_and_field(tmp_path):
    recipe = write(
        tmp_path / "grasp.yaml",
        "# comment\nmethod: grasp\ndescription: d\nconfig:\n  k: 1\n  source: lora\n  rank: 0\n",
    )
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe)
    assert str(err.value).startswith(f"{recipe}:7 config.rank: Input should be greater than 0")


def test_override_error_points_at_the_experiment(tmp_path):
    cfg = write(
        tmp_path / "e.yaml",
        f"name: x\nmethods:\n  - name: lora\n    recipe: {REPO}/baselines/lora.yaml\n"
        "    overrides:\n      rank: -2\n",
    )
    exp = load_experiment(cfg)
    with pytest.raises(ConfigError) as err:
        load_recipes(exp)
    assert f"{cfg}:6 methods[0].overrides.rank" in str(err.value)


def test_unknown_method_and_missing_dependency(tmp_path):
    bad = write(tmp_path / "m.yaml", "method: nosuch\nconfig: {}\n")
    with pytest.raises(ConfigError, match=r"m.yaml:1 method: unknown method 'nosuch'"):
        load_recipe(bad)
    cfg = write(
        tmp_path / "e.yaml",
        f"name: x\nmethods:\n  - name: grasp\n    recipe: {REPO}/baselines/grasp.yaml\n",
    )
    with pytest.raises(ConfigError, match="needs 'lora'"):
        load_recipes(load_experiment(cfg))


def test_yaml_syntax_error_has_line(tmp_path):
    cfg = write(tmp_path / "e.yaml", "name: x\nmethods: [lora\ntrain: {}\n")
    with pytest.raises(ConfigError, match=r"e.yaml:3: invalid YAML"):
        load_experiment(cfg)


def test_cli_lists_subcommands_and_reports_config_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("run", "validate", "train", "methods", "model", "demo"):
        assert cmd in result.output
    cfg = write(tmp_path / "e.yaml", "name: x\nmethods: [lora]\nmodle: default\n")
    result = runner.invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 2
    assert "e.yaml:3 modle: unknown key" in result.output.replace("\n", "")


@pytest.mark.parametrize(
    "path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_committed_experiment_and_its_recipes_load(path):
    exp = load_experiment(path)
    labels = [r.label for r in load_recipes(exp)]
    assert len(labels) == len(set(labels))
