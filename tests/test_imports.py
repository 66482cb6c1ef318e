"""Imports go one way: a module that is used never imports its user (app -> routers -> deps -> core).

The import graph of the product's modules (communication/, core/ and the scripts beside them) is read with `ast`,
every import counting wherever it stands (top level, in a function, under `if TYPE_CHECKING:`): a lazy import
inside a function still ties the two modules together, it only hides the circle until run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("communication", "core")
SCRIPTS = ("main_tars.py", "start_worker.py", "sub_agents_tars.py")

def product_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for script in SCRIPTS:
        found[Path(script).stem] = ROOT / script
    return found


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules that module `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")  # import a.b.c imports a, a.b and a.b.c: the deepest one we have
                found.update(next(([".".join(parts[:i])] for i in range(len(parts), 0, -1)
                                   if ".".join(parts[:i]) in modules), []))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # from a import b: the module a.b if there is one, else a name in a
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one circle through all of them
    where there is one (else its members), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def circle(graph: dict[str, set[str]], members: list[str]) -> str:
    """The shortest circle through the component's first module, for the failure message: a -> b -> a."""
    start, inside = members[0], set(members)
    came_from: dict[str, str] = {}
    queue = [start]
    while queue:
        here = queue.pop(0)
        for target in sorted(graph[here] & inside):
            if target == start:
                path = [here]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return " -> ".join([*reversed(path), start])
            if target not in came_from:
                came_from[target] = here
                queue.append(target)
    return " <-> ".join(members)  # not reached for a strongly connected component


def test_the_graph_reads_imports_of_every_kind():
    graph = import_graph()
    assert "communication.deps" in graph["communication.api"]  # from communication.deps import ...
    assert "core.sandbox" in graph["communication.app"]  # from core import sandbox
    assert "communication.app" in graph["main_tars"]  # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circle({"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c"]) == "a -> c -> a"


def test_no_product_module_imports_a_module_that_imports_it_back():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import circles:\n" + "\n".join(circle(graph, members) for members in found)


def test_the_routers_and_their_dependencies_import_one_way():
    graph = import_graph()
    assert not graph["communication.deps"] & {"communication.app", "communication.api", "communication.dashboard"}
    assert "communication.api" not in graph["communication.dashboard"]
    assert "communication.dashboard" not in graph["communication.api"]
    assert not any(name.startswith("communication") for module in graph if module.startswith("core.")
                   for name in graph[module])
