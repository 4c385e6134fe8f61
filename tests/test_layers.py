"""The layers hold: the import-linter contracts in ``.importlinter`` (layers pointing down,
no Qt outside ``gui/``, the window's parts pointing down) and no import cycle between any two
files. Both read the code's real import graph (grimp, import-linter's engine), with imports
inside functions counted: a cycle hidden in a function is still a cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def strongly_connected_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the package has a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    found = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert found == [{"a", "b", "c"}]


def _package_init_edges(module: str, imported: str) -> bool:
    """An ``__init__`` that re-exports its own submodules is not a cycle between files."""
    return imported.startswith(module + ".") or module.startswith(imported + ".")


def test_no_two_files_import_each_other():
    graph = grimp.build_graph("cxrgan_desktop", include_external_packages=False)
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m)
                 if not _package_init_edges(m, i)} for m in graph.modules}
    cycles = [sorted(c) for c in strongly_connected_components(edges) if len(c) > 1]
    assert cycles == []


@pytest.mark.slow
def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "0 broken" in run.stdout
