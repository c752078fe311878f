"""Imports point one way between the services, the locker link and the composition (issue 15).

The graph is read from the source (every import, at the top of a module or inside a function:
a deferred import still ties the modules together). `relay_ops/cli.py` and the process
entry points compose; `firmware_bridge` uses the services it is given; the services never
reach back to either, and no `relay_ops.services.*` module is in a circle, with no exception:
a use case is read in one file without its callers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("relay_ops", "firmware_bridge")


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(resolve(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from relay_ops.services import lockers` names the module lockers
                targets.update(resolve(f"{node.module}.{alias.name}") for alias in node.names)
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def touching(components: Iterable[set[str]], *prefixes: str) -> list[list[str]]:
    return [sorted(c) for c in components if any(m.startswith(prefixes) for m in c)]


def test_the_locker_link_is_in_no_import_circle() -> None:
    # firmware_bridge.bridge -> relay_ops (create_app) -> relay_ops.cli -> embedded -> bridge
    assert touching(circles(import_graph()), "firmware_bridge") == []


def test_no_service_module_is_in_an_import_circle() -> None:
    # every module under relay_ops/services, the lockers' and the shop's alike
    assert touching(circles(import_graph()), "relay_ops.services") == []


def test_the_composition_is_in_no_import_circle() -> None:
    """The app factory does not attach the CLI (`cli.create_operator_app` does), so the CLI and
    the worker, which build the app themselves, are in no circle with it."""
    assert touching(circles(import_graph()), "relay_ops.cli", "relay_ops.worker") == []
    assert "relay_ops.cli" not in import_graph()["relay_ops"]


def test_the_graph_covers_every_service_module() -> None:
    services = ROOT / "relay_ops" / "services"
    files = {f"relay_ops.services.{path.stem}" for path in services.glob("*.py")
             if path.stem != "__init__"}
    assert files <= import_graph().keys()


def test_a_circle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    """The check read from files: `b` reaches back to `a` only inside a function."""
    services = tmp_path / "relay_ops" / "services"
    services.mkdir(parents=True)
    (tmp_path / "firmware_bridge").mkdir()
    for package in (tmp_path / "relay_ops", services):
        (package / "__init__.py").write_text("")
    (services / "a.py").write_text("from relay_ops.services import b\n")
    (services / "b.py").write_text("def f() -> None:\n    from relay_ops.services.a import g\n")
    assert touching(circles(import_graph(tmp_path)), "relay_ops.services") == [
        ["relay_ops.services.a", "relay_ops.services.b"]]


def test_the_services_never_import_the_composition_or_the_bridge() -> None:
    graph = import_graph()
    composition = {"relay_ops", "relay_ops.cli", "firmware_bridge.bridge",
                   "firmware_bridge.embedded"}
    reaching = {module: sorted(graph[module] & composition) for module in graph
                if module.startswith("relay_ops.services.") and graph[module] & composition}
    assert reaching == {}


def test_a_circle_is_found() -> None:
    """The check itself: a circle through a deferred import is one."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [{"a", "b", "c"}]
