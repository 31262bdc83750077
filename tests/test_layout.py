"""The package's architecture holds: subpackages by stage, few top-level modules, no import cycle.

Imports are read with ``ast`` (top-level and function-level alike), so a lazy import inside a
function that closes a cycle counts too: it would still tie the two modules together.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "bench"
MAX_TOP_LEVEL_MODULES = 12


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The bench modules that ``path`` imports (``from bench.x import y`` names bench.x.y if a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_module_imports_one_that_imports_it_back():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_top_level_holds_only_shared_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("subpackage", ["data", "models", "stores", "measure", "report", "gate"])
def test_each_stage_is_a_subpackage(subpackage):
    assert (PACKAGE / subpackage / "__init__.py").is_file()


README = PROJECT_ROOT / "README.md"
README_MAX_BYTES = 10 * 1024


def test_readme_stays_short():
    """The README is the pitch, the quick start, running, the config groups and links; the rest is in docs/."""
    assert len(README.read_bytes()) <= README_MAX_BYTES


def test_every_docs_page_is_linked_from_the_readme():
    readme = README.read_text()
    unlinked = [p.name for p in sorted((PROJECT_ROOT / "docs").glob("*.md")) if f"](docs/{p.name}" not in readme]
    assert not unlinked, f"docs pages missing from the README's Documentation list: {unlinked}"
