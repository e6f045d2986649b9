"""The provisioning app's layers, read from the source: tasks -> engine parts -> outbox / dispatch.

Every import is counted, at module level or inside a function, so a cycle cannot hide in a late
import. Pure source reading: no database, no Django setup needed.
"""

import ast
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "apps"
PACKAGE = "apps.provisioning"
# Entry points above the engine: nothing in the app imports them (apps.py registers the tasks).
ENTRY_POINTS = {f"{PACKAGE}.tasks", f"{PACKAGE}.services"}
# The bottom layers and the only app modules each may import.
BOTTOM = {
    f"{PACKAGE}.dispatch": set(),
    f"{PACKAGE}.waiting": {f"{PACKAGE}.models"},
    f"{PACKAGE}.outbox": {f"{PACKAGE}.dispatch", f"{PACKAGE}.models", f"{PACKAGE}.waiting"},
}
# Pure modules: no database, no HTTP, no other provisioning module but each other.
PURE = {f"{PACKAGE}.mapping", f"{PACKAGE}.planner"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(APPS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import of an `apps.` module in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from apps.provisioning import batch` imports the module apps.provisioning.batch
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            if name.startswith("apps."):
                found.append((name, id(node) in top_level))
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """Module -> the app modules it imports (anywhere in it); module -> its imports inside functions."""
    modules = {_module_name(path): path for path in APPS.rglob("*.py") if "migrations" not in path.parts}
    graph: dict[str, set[str]] = {}
    late: dict[str, list[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported, top in _imports(path):
            if imported in modules and imported != name:
                edges.add(imported)
                if not top:
                    late.setdefault(name, []).append(imported)
        graph[name] = edges
    return graph, late


def _cycles_through(graph: dict[str, set[str]], prefix: str) -> list[list[str]]:
    """Every module of `prefix` that can reach itself, with one such path."""
    cycles = []
    for start in sorted(module for module in graph if module.startswith(prefix)):
        stack, seen = [(start, [start])], set()
        while stack:
            module, path = stack.pop()
            for imported in sorted(graph.get(module, ())):
                if imported == start:
                    cycles.append([*path, start])
                    stack.clear()
                    break
                if imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*path, imported]))
    return cycles


@pytest.fixture(scope="module")
def imports():
    return _graph()


def test_no_provisioning_module_is_part_of_an_import_cycle(imports):
    graph, _ = imports
    assert _cycles_through(graph, f"{PACKAGE}.") == []


def test_no_provisioning_module_imports_another_inside_a_function(imports):
    """A late import is how a cycle hides; the app config's ready() registering the tasks is the one exception."""
    _, late = imports
    found = {
        module: sorted(name for name in names if name.startswith(f"{PACKAGE}."))
        for module, names in late.items()
        if module.startswith(f"{PACKAGE}.") and module != f"{PACKAGE}.apps"
    }
    assert {module: names for module, names in found.items() if names} == {}


def test_nothing_in_the_app_imports_the_tasks_or_the_admin_services(imports):
    graph, _ = imports
    importers = {
        module: sorted(graph[module] & ENTRY_POINTS)
        for module in graph
        if module.startswith(f"{PACKAGE}.") and module != f"{PACKAGE}.apps" and graph[module] & ENTRY_POINTS
    }
    assert importers == {}


def test_the_outbox_and_dispatch_import_nothing_above_them(imports):
    graph, _ = imports
    for module, allowed in BOTTOM.items():
        above = {name for name in graph[module] if name.startswith(f"{PACKAGE}.")} - allowed
        assert above == set(), f"{module} imports {sorted(above)}"


def test_the_planner_and_the_mapping_are_pure(imports):
    graph, _ = imports
    for module in PURE:
        source = (APPS.parent / (module.replace(".", "/") + ".py")).read_text()
        assert "django.db" not in source and "client" not in {name.rsplit(".", 1)[-1] for name in graph[module]}, module
        provisioning = {name for name in graph[module] if name.startswith(f"{PACKAGE}.")}
        assert provisioning <= PURE | {f"{PACKAGE}.models"}, f"{module} imports {sorted(provisioning - PURE)}"


def test_other_apps_hear_of_changes_without_importing_provisioning(imports):
    """The directory and connector services announce changes; the outbox listens (apps.*.changes)."""
    from apps.connectors import changes as connector_changes
    from apps.directory import changes as directory_changes
    from apps.provisioning import outbox

    graph, _ = imports
    for module in ("apps.directory.services", "apps.connectors.services"):
        provisioning = {name for name in graph[module] if name.startswith(f"{PACKAGE}.")}
        assert provisioning == set(), module
    assert outbox in directory_changes._listeners and outbox in connector_changes._listeners


def test_the_connectors_settings_are_written_by_the_connectors_app_only():
    """ProvisioningSettings belongs to the connectors app: provisioning pauses through its service."""
    written = []
    for path in (APPS / "provisioning").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(element, ast.Attribute) and element.attr in {"paused", "paused_reason"}:
                        written.append(f"{path.name}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"update", "create", "update_or_create", "get_or_create"}
            ):
                written += [
                    f"{path.name}:{keyword.value.lineno}"
                    for keyword in node.keywords
                    if keyword.arg in {"paused", "paused_reason"}
                ]
    assert written == []
