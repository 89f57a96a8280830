"""Fine-tuning methods, registered by name. Importing this package registers the built-ins."""

from grasp_bench.train.methods import activation, grasp, regularised, simple  # noqa: F401  (registration)
from grasp_bench.train.methods.base import (
    LoraMethodConfig,
    Method,
    MethodConfig,
    TrainContext,
    get_method_class,
    register_method,
    registered_methods,
)
from grasp_bench.train.methods.recipes import Recipe, load_recipe

__all__ = [
    "LoraMethodConfig",
    "Method",
    "MethodConfig",
    "Recipe",
    "TrainContext",
    "get_method_class",
    "load_recipe",
    "register_method",
    "registered_methods",
]
