"""The import contract of apps/: which app may import which, read from the code itself.

Layers, from the edges in: the ways in (console, api, scim_server, portal, saml_sp) call the domain
(saml_idp, oidc, provisioning, connectors), which calls the core (directory, audit, common). An import
never goes up a layer, no two apps import each other (directly or round a longer loop), no two
modules import each other, and no app writes another app's models through their managers.
"""

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parent.parent / "apps"

LAYERS = {
    "console": 3,
    "api": 3,
    "scim_server": 3,
    "portal": 3,
    "saml_sp": 3,
    "saml_idp": 2,
    "oidc": 2,
    "provisioning": 2,
    "connectors": 2,
    "directory": 1,
    "audit": 1,
    "common": 0,
}
# Manager and queryset methods that write rows.
WRITE_METHODS = {"create", "bulk_create", "bulk_update", "update", "update_or_create", "get_or_create", "delete"}
MAX_MODULE_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(APPS_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text(), filename=str(path))
        for path in sorted(APPS_DIR.rglob("*.py"))
        if "migrations" not in path.parts
    }


def _imports(tree: ast.Module) -> set[str]:
    """Every apps.* module a module imports, at the top or inside a function."""
    found = set()
    modules = _modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("apps."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("apps."):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return found


def _app(module: str) -> str:
    return module.split(".")[1]


def _app_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, tree in _modules().items():
        for imported in _imports(tree):
            if _app(imported) != _app(module):
                graph[_app(module)].add(_app(imported))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
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
    return found


def test_every_app_has_a_layer():
    apps = {path.name for path in APPS_DIR.iterdir() if (path / "__init__.py").exists()}
    assert apps == set(LAYERS)


def test_no_import_goes_up_a_layer():
    upward = sorted(
        f"{app} -> {imported}" for app, targets in _app_graph().items() for imported in targets
        if LAYERS[imported] > LAYERS[app]
    )  # fmt: skip
    assert upward == []


def test_no_two_apps_import_each_other():
    assert _cycles(_app_graph()) == []


def test_no_two_modules_import_each_other():
    graph = {module: _imports(tree) & set(_modules()) for module, tree in _modules().items()}
    assert _cycles(graph) == []


def _foreign_models(module: str, tree: ast.Module) -> set[str]:
    """Names bound to another app's models in this module (`from apps.x.models import Group`)."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.endswith(".models")
            and node.module.startswith("apps.")
            and _app(node.module) != _app(module)
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _receiver_root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def test_no_app_writes_another_apps_models():
    writes = []
    for module, tree in _modules().items():
        foreign = _foreign_models(module, tree)
        if not foreign:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITE_METHODS
                and ".objects" in ast.unparse(node.func.value) + "."
                and _receiver_root(node.func.value) in foreign
            ):
                writes.append(f"{module}:{node.lineno} {ast.unparse(node.func)[:80]}")
    assert writes == []


def test_no_module_over_600_lines():
    long = sorted(
        f"{path.relative_to(APPS_DIR.parent)} ({lines})"
        for path in APPS_DIR.rglob("*.py")
        if "migrations" not in path.parts and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    )
    assert long == []
