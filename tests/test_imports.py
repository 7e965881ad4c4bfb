"""The packages form layers: no import cycle among modules or among packages and subpackages, and
every module imports on its own in a fresh interpreter (no hidden dependence on import order)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search_spaces", "supernet", "latency_lut", "nas")


def project_modules() -> dict[str, Path]:
    """Every module of the four packages by dotted name (a package by its ``__init__``)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks (imports for annotations only, never executed)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (at any level of nesting, annotations-only ones excepted)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def package_of(module: str, modules: dict[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def test_no_import_cycle_among_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_no_import_cycle_among_packages_and_subpackages():
    """A package's ``__init__`` may gather its subpackages' names (the public facade) and its ``__main__``
    start the command line; every other import between packages must point one way."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        source = package_of(module, modules)
        is_facade = modules[module].name in ("__init__.py", "__main__.py")
        for target in targets:
            destination = package_of(target, modules)
            if destination == source or (is_facade and destination.startswith(source + ".")):
                continue
            graph.setdefault(source, set()).add(destination)
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)
    # the layers, from the bottom: nothing below imports anything above
    order = ["search_spaces", "supernet", "latency_lut", "nas"]
    for source, destinations in graph.items():
        for destination in destinations:
            top_s, top_d = source.split(".")[0], destination.split(".")[0]
            assert order.index(top_d) <= order.index(top_s), (source, destination)


@pytest.mark.subprocess
def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """Each module in a process of its own (forked from one that imported only third-party libraries, so
    the 80-odd imports take seconds, not minutes)."""
    names = sorted(name for name in project_modules() if not name.endswith(".__main__"))  # __main__ runs the CLI
    script = f"""
import importlib, os, sys, traceback
sys.path.insert(0, {str(ROOT)!r})
for lib in ("numpy", "scipy.stats", "torch", "torch.func", "yaml", "optuna", "moocore", "sklearn.ensemble", "tqdm",
            "PIL.Image", "ray.tune.search"):  # third-party, imported once and shared by the forks
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
failed = []
for name in {names!r}:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED:" + ",".join(failed))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FAILED:" in result.stdout and result.stdout.strip().rpartition("FAILED:")[2] == "", result.stderr[-3000:]
