"""One registry for every kind of named part (methods, tasks, judges, a rubric's offline judge).

A name means one thing: registering a name that already means something else is an error
unless the caller says ``replace=True``, so a plugin cannot silently shadow a shipped part (or
be silently shadowed by one). The shipped parts are registered by importing the modules named
in ``builtins``, once, before the first lookup and before any other registration, so a
conflict with a built-in shows at the plugin's own ``register`` call.
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryConflict(ValueError):
    """A name registered twice for two different things, without ``replace=True``."""


class Registry(Generic[T]):
    """Named things of one kind, e.g.
    ``Registry("method", builtins=("grasp_bench.train.methods",))``."""

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()):
        self.kind = kind
        self.entries: dict[str, T] = {}
        self._builtins = builtins
        self._loaded = not builtins
        self._loading = False
        self._shipped: set[str] = set()  # names the built-in modules registered

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        """Make ``item`` available as ``name``; the same item again is a no-op."""
        self._load_builtins()
        current = self.entries.get(name)
        if current is not None and current is not item and not replace:
            raise RegistryConflict(
                f"{self.kind} {name!r} is already registered ({_describe(current)}); "
                "pass replace=True to replace it"
            )
        self.entries[name] = item
        if self._loading:
            self._shipped.add(name)
        else:
            self._shipped.discard(name)  # replaced by a plugin: no longer the shipped one
        return item

    def get(self, name: str) -> T:
        self._load_builtins()
        try:
            return self.entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {self.names()}") from None

    def find(self, name: str) -> T | None:
        """The item registered as ``name``, or None."""
        self._load_builtins()
        return self.entries.get(name)

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self.entries)

    def builtin_names(self) -> list[str]:
        """The names the shipped modules registered (and no plugin has replaced)."""
        self._load_builtins()
        return sorted(self._shipped)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self.entries

    def _load_builtins(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True  # the built-in modules register while being imported
        try:
            for module in self._builtins:
                importlib.import_module(module)
            self._loaded = True
        finally:
            self._loading = False


def _describe(item: object) -> str:
    module = getattr(item, "__module__", None)
    name = getattr(item, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(item)[:80]


# The task registry lives here, below the experiment schema that checks a task's name, so the
# schema needs nothing above the core; its items are ``taskspec.TaskSpec``s.
TASKS: Registry[Any] = Registry(
    "task", builtins=("grasp_bench.data.shipped_tasks", "grasp_bench.studies.implicit_task")
)
