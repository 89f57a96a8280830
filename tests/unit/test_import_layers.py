"""The package's layers are its folders: a module imports only from its own level or below
(lazy imports inside functions included), no modules import each other in a cycle, and the
folders of one level do not import each other both ways.

1 ``core`` (config, YAML loading, stores, run directories, locks, hardware, stats, the
registry); 2 ``model`` (loading, module roles, hooks, directions) and ``data`` (task specs and
their data); 3 ``train`` (the trainer and the methods) and ``evaluate`` (generation, judges,
scoring, reports; ``lm_tasks`` is its lm-eval task folders); 4 ``leaderboard`` and ``studies``
(planted direction, implicit factor); 5 ``run`` (stages, pipeline, sweeps, executors, cost
plans); 6 ``cli``. A new folder gets a level here or the test fails; no module sits outside a
folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "grasp_bench"

LEVELS = {
    1: ["core"],
    2: ["model", "data"],
    3: ["train", "evaluate", "lm_tasks"],
    4: ["leaderboard", "studies"],
    5: ["run"],
    6: ["cli"],
}
LONGEST = 400  # lines: "about 400"
LEVEL_OF = {part: level for level, parts in LEVELS.items() for part in parts}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every grasp_bench module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


MODULES = _modules()
GRAPH = {m: _imports(p, MODULES) - {m} for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m)))
def test_every_module_has_a_level(module):
    assert _part(module) in LEVEL_OF, f"{module}: give grasp_bench.{_part(module)} a level"
    path = MODULES[module]
    assert path.parent != PACKAGE, f"{module}: a module belongs in a layer's folder"


def test_folders_of_one_level_do_not_import_each_other_both_ways():
    edges = {(_part(m), _part(n)) for m, names in GRAPH.items() for n in names
             if _part(m) and _part(n) and _part(m) != _part(n)}  # fmt: skip
    both = sorted({tuple(sorted(e)) for e in edges if (e[1], e[0]) in edges})
    assert not both, f"folders importing each other: {both}"


def test_no_module_is_far_over_the_size_a_reader_holds():
    """About 400 lines; a file of templates (data the generators draw from) is exempt."""
    templates = {"grasp_bench.data.insecure_code"}
    long = {m: n for m, p in MODULES.items()
            if m not in templates and (n := len(p.read_text().splitlines())) > LONGEST}  # fmt: skip
    assert not long, f"split these modules (lines): {long}"


def test_no_module_imports_from_a_higher_level():
    upward = [
        f"{m} (level {LEVEL_OF[_part(m)]}) imports {n} (level {LEVEL_OF[_part(n)]})"
        for m, names in GRAPH.items()
        for n in names
        if _part(m) in LEVEL_OF and _part(n) in LEVEL_OF
        and LEVEL_OF[_part(n)] > LEVEL_OF[_part(m)]
    ]  # fmt: skip
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    """Strongly connected modules (a package and its own submodules excepted: importing a
    submodule runs its package's __init__ first)."""
    graph = {
        m: {n for n in names if not m.startswith(n + ".") and not n.startswith(m + ".")}
        for m, names in GRAPH.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_scanner_sees_imports_inside_functions(tmp_path):
    """What the layer test rests on: an import hidden in a function body is still seen."""
    path = tmp_path / "lazy.py"
    path.write_text(
        "def f():\n    from grasp_bench.cli import app\n    import grasp_bench.core.store\n"
    )
    assert _imports(path, MODULES) == {"grasp_bench.cli", "grasp_bench.core.store"}
