"""Check that the tree keeps its rooms: imports flow one way and modules stay readable.

Every ``import`` and ``from ... import`` statement counts, at module level or inside a function:
a function-level import hides a cycle from Python's loader, not from a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "evolve")
MAX_LINES = 600
# Modules that must be one piece say why in their docstring, with this phrase.
ONE_PIECE = "one piece"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _targets(node: ast.AST, current: str, is_package: bool, modules: dict) -> set[str]:
    """Project modules an import statement names (a submodule if it is one, else its package)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return {n for n in names if n in modules}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        anchor = current.split(".") if is_package else current.split(".")[:-1]
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:
            out.add(sub)
        elif base in modules:
            out.add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its text."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(tree):
            edges |= _targets(node, name, is_package, modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports_inside_functions():
    """Check that the walker counts a function-level import and resolves relative and submodule names."""
    graph = import_graph()
    assert "core.isa" in graph["core.asm"]                       # a module-level import
    tree = ast.parse("def f():\n    from core import asm\n    from . import isa\n")
    mods = {"core": None, "core.asm": None, "core.isa": None, "core.x": None}
    got = set()
    for node in ast.walk(tree):
        got |= _targets(node, "core.x", False, mods)
    assert got == {"core.asm", "core.isa"}


def test_cycle_finder_finds_a_cycle():
    """Check that the cycle finder reports a two-module cycle and ignores a chain."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle():
    """Check that no import cycle exists among core/ and evolve/ modules."""
    assert _cycles(import_graph()) == []


def test_core_never_imports_evolve():
    """Check that the arrow points one way: evolve builds on core, never the reverse."""
    back = {m: sorted(t for t in ts if t.split(".")[0] == "evolve")
            for m, ts in import_graph().items() if m.startswith("core")}
    assert {m: t for m, t in back.items() if t} == {}


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_size(name):
    """Check that a module stays under ~600 lines unless its docstring says why it is one piece."""
    path = _modules()[name]
    text = path.read_text()
    lines = text.count("\n")
    if lines > MAX_LINES:
        doc = ast.get_docstring(ast.parse(text)) or ""
        assert ONE_PIECE in doc, f"{path.relative_to(ROOT)} has {lines} lines and no reason to be one piece"
