"""Method recipes: ``baselines/<name>.yaml`` names a registered method and its config.

Recipes are data that users read and edit; errors name the recipe file, line and field, or the
experiment file's line when the bad value came from an override there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from grasp_bench.core.yaml_loader import (
    ConfigError,
    Loc,
    StrictModel,
    format_validation_error,
    load_yaml,
    validate_as,
)
from grasp_bench.train.methods.base import Method, get_method_class


class RecipeFile(StrictModel):
    """The layout of a recipe YAML."""

    method: str = Field(description="Registered method name (see `grasp-bench methods`).")
    description: str = Field("", description="One line for the leaderboard.")
    config: dict[str, Any] = Field(default_factory=dict, description="The method's config.")


@dataclass
class Recipe:
    label: str
    path: Path
    method: Method
    config: dict[str, Any]
    description: str


def load_recipe(
    path: Path,
    label: str | None = None,
    overrides: dict[str, Any] | None = None,
    override_origin: tuple[Path, dict[Loc, int], Loc] | None = None,
) -> Recipe:
    path = Path(path)
    data, lines = load_yaml(path)
    recipe = validate_as(RecipeFile, data, path, lines)
    try:
        cls = get_method_class(recipe.method)
    except KeyError as exc:
        raise ConfigError(f"{path}:{lines.get(('method',), 1)} method: {exc.args[0]}") from None
    merged = {**recipe.config, **(overrides or {})}
    try:
        config = cls.config_cls.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        if overrides and first and first[0] in overrides and override_origin:
            o_path, o_lines, o_prefix = override_origin
            raise format_validation_error(exc, o_path, o_lines, o_prefix) from None
        raise format_validation_error(exc, path, lines, ("config",)) from None
    return Recipe(
        label=label or path.stem,
        path=path,
        method=cls(config),
        config=config.model_dump(mode="json"),
        description=recipe.description,
    )
