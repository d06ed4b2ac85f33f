"""The kernel's shape: no import circle, layers that import only what is below them, no module over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import REPO

PACKAGE = REPO / "aios_core"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "plugin_template" in path.parts:
            continue
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, *, top_level_only: bool) -> set[str]:
    """The aios_core modules ``name`` imports: at import time only, or anywhere (inside functions too)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("aios_core"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                if base.startswith("aios_core"):
                    for alias in node.names:
                        candidate = f"{base}.{alias.name}"
                        found.add(candidate if candidate in MODULES else base)
            if not top_level_only or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        visit([c for c in children if isinstance(c, ast.stmt | ast.ExceptHandler)], top)

    visit(tree.body, True)
    found.discard(name)
    return {module for module in found if module in MODULES}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_kernel_module_is_longer_than_500_lines(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(REPO)} has {lines} lines; split it along its seams"


def test_module_level_imports_form_no_circle() -> None:
    graph = {name: _imports(name, top_level_only=True) for name in MODULES}
    # A package's __init__ importing its own submodules is how a package is assembled, not a circle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (MODULES[name].name == "__init__.py" and m.startswith(name + "."))}
    visiting: list[str] = []
    done: set[str] = set()

    def walk(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import circle: " + " -> ".join(visiting[visiting.index(name):] + [name])
        visiting.append(name)
        for imported in sorted(graph[name]):
            walk(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        walk(name)


def test_the_vocabulary_imports_nothing() -> None:
    tree = ast.parse(MODULES["aios_core.vocabulary"].read_text(encoding="utf-8"))
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(node, ast.ImportFrom) and node.module == "__future__" for node in imports)


@pytest.mark.parametrize(("low", "high"), [
    ("aios_core.plugins", ("aios_core.catalog", "aios_core.installer", "aios_core.stack", "aios_core.cli",
                           "aios_core.runner")),
    ("aios_core.catalog", ("aios_core.plugins", "aios_core.stack", "aios_core.cli", "aios_core.runner")),
    ("aios_core.hookspecs", ("aios_core.plugins", "aios_core.stack", "aios_core.runner", "aios_core.cli")),
    ("aios_core.records", ("aios_core.plugins", "aios_core.stack", "aios_core.runner", "aios_core.cli")),
    ("aios_core.rundir", ("aios_core.plugins", "aios_core.stack", "aios_core.runner", "aios_core.cli")),
    ("aios_core.training", ("aios_core.plugins", "aios_core.stack", "aios_core.runner", "aios_core.cli")),
])
def test_a_lower_layer_never_imports_a_higher_one(low: str, high: tuple[str, ...]) -> None:
    """Not even lazily inside a function: the loader raises a typed error and the index layer phrases the hint."""
    imported = _imports(low, top_level_only=False)
    offending = sorted(m for m in imported if m.startswith(high))
    assert not offending, f"{low} imports {offending}"
