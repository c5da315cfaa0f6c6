"""The package's import graph: no circle, and no module imports from a layer above its own.

Every ``import``/``from ... import`` of a ``centernet`` module counts, also inside functions
and under ``if TYPE_CHECKING`` (a lazy import is still a dependency). A name taken from a
package with lazy exports (``from centernet.runtime import Detector``) counts as an import
of the module that defines it. Read from the source with ``ast``: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import centernet

ROOT = Path(centernet.__file__).parent

#: The layers, lowest first: a module may import its own layer and those below. The fronts
#: call everything; build, training and measure use the runtime; the runtime runs engines;
#: engines read model files and build networks; everything may use the shared types.
LAYERS: dict[str, int] = {
    "centernet._lazy": 0,
    "centernet.types": 0,
    "centernet.config_fields": 0,
    "centernet.errors": 0,
    "centernet.classes": 0,
    "centernet.progress": 0,
    "centernet.assets": 0,
    "centernet.models": 1,
    "centernet.modelfile": 1,
    "centernet.datasets": 1,
    "centernet.engines": 2,
    "centernet.runtime": 3,
    "centernet.measure": 4,
    "centernet.export": 4,
    "centernet.quantize": 4,
    "centernet.training": 4,
    "centernet.cli": 5,
    "centernet.serve": 5,
    "centernet.distributed": 5,
    "centernet.video": 5,
    "centernet.demo": 5,
    "centernet": 0,  # the facade: the version, and names it imports lazily (see lazy_names)
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def lazy_names(path: Path) -> dict[str, str]:
    """name -> defining module of a package ``__init__`` that calls ``lazy_exports`` (or,
    the facade, maps names to modules in ``_EXPORTS``)."""
    found: dict[str, str] = {}
    package = module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_EXPORTS":
            for key, value in zip(node.value.keys, node.value.values):  # type: ignore[attr-defined]
                found[key.value] = f"{package}.{value.value}"
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy_exports":
            mapping = node.args[1]
            assert isinstance(mapping, ast.Dict), f"{package}: lazy_exports takes a dict literal"
            for key, value in zip(mapping.keys, mapping.values):
                found[key.value] = f"{package}.{value.value}"  # type: ignore[union-attr]
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The centernet modules ``path`` imports (resolved to defining modules)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("centernet")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("centernet"):
                continue
            lazy = lazy_names(modules[node.module]) if node.module in modules else {}
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else lazy.get(alias.name, node.module))
    return found - {module_name(path)}


def layer_of(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or
                module.startswith(prefix + ".")), key=len)  # fmt: skip
    return LAYERS[best]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    for module in graph:
        assert any(module == p or module.startswith(p + ".") for p in LAYERS), module


def test_no_module_imports_from_a_layer_above_its_own(graph):
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_circle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_checks_catch_what_they_look_for():
    """The walker on a made-up graph: a circle and an upward import are found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert layer_of("centernet.runtime.device.stages") == LAYERS["centernet.runtime"]
    assert layer_of("centernet.engines") < layer_of("centernet.runtime.detector")
