"""The modules of ``irrepnet.bench`` import one way: their import graph has no cycle.

A cycle (two modules that import each other, even inside a function) means one of them
borrows helpers of the other; they belong in a module beneath both.
"""

import ast
from pathlib import Path

import irrepnet.bench

PACKAGE = Path(irrepnet.bench.__file__).parent
NAME = "irrepnet.bench"


def bench_imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y / from . import x
                base = node.module
            elif node.level == 0 and node.module and node.module.startswith(NAME):
                base = node.module[len(NAME) + 1 :] or None
            else:
                continue
            if base:
                found.add(base.split(".")[0])
            else:
                found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.Import):
            found |= {a.name[len(NAME) + 1 :].split(".")[0] for a in node.names if a.name.startswith(NAME + ".")}
    return found & modules


def import_graph(folder: Path) -> dict[str, set[str]]:
    modules = {p.stem for p in folder.glob("*.py")}
    return {p.stem: bench_imports(p, modules) - {p.stem} for p in folder.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or ``None`` (depth-first search with three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_bench_imports_run_one_way():
    graph = import_graph(PACKAGE)
    assert {"runner", "shard", "report", "report_energy", "plots", "plots_energy"} <= graph.keys()
    assert "records" in graph["shard"] and "runner" not in graph["shard"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in irrepnet.bench: " + " -> ".join(cycle)


def test_the_check_sees_a_cycle_through_a_function_level_import(tmp_path):
    # the meta-test: the circles this check was written for were imports inside functions
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "c.py").write_text("import irrepnet.bench.a\n")
    (tmp_path / "d.py").write_text("from .. import keys\nfrom . import b\n")
    graph = import_graph(tmp_path)
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"b"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    (tmp_path / "c.py").write_text("import numpy\n")
    assert find_cycle(import_graph(tmp_path)) is None
