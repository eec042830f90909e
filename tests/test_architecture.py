"""The layout's rules, read from the source: imports flow one way between the layers, no
module imports itself back through others, and no `_`-prefixed name of a third-party
package is imported, called or set anywhere in the code."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "auth_service"

# A layer imports only from layers listed before it (and from itself). The metric objects
# sit at the bottom beside the extension objects, so that any layer can count; the rest
# of observability (the /metrics endpoint, the request hooks) stays at the top (ADR 2405).
LAYERS = [
    {
        "auth_service.extensions",
        "auth_service.error_codes",
        "auth_service.version",
        "auth_service.observability.metrics",
    },
    {"auth_service.errors"},
    {"auth_service.persistence"},
    {"auth_service.security"},
    {"auth_service.integrations"},
    {"auth_service.services"},
    {
        "auth_service.http",
        "auth_service.cli",
        "auth_service.cli_keys",
        "auth_service.cli_failures",
        "auth_service.cli_audit",
        "auth_service.observability",
    },
    {"auth_service"},
]
# Code of ours outside the package: the top-level modules, bench/, tests/ and their helpers.
OWN_TOP_LEVEL = {"auth_service", "config", "wsgi", "bench", "tests", "migrations"}
SOURCES = [
    *PACKAGE.rglob("*.py"),
    *(ROOT / "bench").rglob("*.py"),
    *(ROOT / "tests").rglob("*.py"),
    *(ROOT / "migrations").rglob("*.py"),
    ROOT / "config.py",
    ROOT / "wsgi.py",
    ROOT / "gunicorn.conf.py",
    *(ROOT / "docs").rglob("*.py"),
]
# Underscored names that are documented API: namedtuple's methods, marshmallow's
# field hook (overridden and called through super()).
DOCUMENTED_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make", "_deserialize", "_serialize"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports() -> dict[str, set[str]]:
    """Every auth_service module -> the auth_service modules (or packages) it imports."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and node.module
                and node.module.split(".")[0] == "auth_service"
            ):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.split(".")[0] == "auth_service"}
        graph[name] = imported - {name}
    return graph


def layer_of(module: str) -> int:
    for depth in range(module.count(".") + 1, 0, -1):
        prefix = ".".join(module.split(".")[:depth])
        for index, layer in enumerate(LAYERS):
            if prefix in layer:
                return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def test_imports_flow_one_way_between_the_layers():
    wrong = sorted(
        f"{module} imports {imported}"
        for module, imports in package_imports().items()
        for imported in imports
        if layer_of(imported) > layer_of(module)
    )
    assert wrong == []


def test_no_module_imports_itself_back():
    graph = package_imports()
    cycles = set()

    def visit(module, path):
        for imported in graph.get(module, ()):
            if imported in path:
                cycles.add(" -> ".join(path[path.index(imported) :] + [imported]))
            elif len(path) < len(graph):
                visit(imported, path + [imported])

    for module in graph:
        visit(module, [module])
    assert cycles == set()


@pytest.mark.parametrize(
    "path", [ROOT / "config.py", PACKAGE / "extensions.py"], ids=["config.py", "extensions.py"]
)
def test_config_and_extensions_import_nothing_from_the_package(path):
    tree = ast.parse(path.read_text())
    imported = [
        node
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("auth_service"))
        or (
            isinstance(node, ast.Import)
            and any(a.name.startswith("auth_service") for a in node.names)
        )
    ]
    assert imported == []


def test_the_metric_objects_import_only_the_error_table():
    """Every layer counts through observability.metrics: it must stay a leaf."""
    assert package_imports()["auth_service.observability.metrics"] <= {"auth_service.error_codes"}


# Test and bench helpers are imported by their bare names (helpers, dance, servers...).
LOCAL_MODULES = OWN_TOP_LEVEL | {path.stem for path in SOURCES}


def third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in LOCAL_MODULES and top not in sys.stdlib_module_names


def holds_third_party_objects(module: str) -> bool:
    """Modules whose names are third-party objects (extensions.py: db, jwt, api...)."""
    return third_party(module) or module == "auth_service.extensions"


def private_uses(path: Path) -> list[str]:
    """`_name`s of third-party packages this file imports, reads, calls or sets."""
    tree = ast.parse(path.read_text())
    bound = set()  # local names bound to a third-party module or object
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and holds_third_party_objects(node.module)
        ):
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"{node.lineno}: from {node.module}")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.lineno}: import {alias.name} from {node.module}")
                bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if third_party(alias.name):
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
                    bound.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in DOCUMENTED_UNDERSCORED
        ):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            # self/cls and our own modules may use their own private names.
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
            elif isinstance(base, ast.Call) and ast.unparse(base.func) == "super":
                found.append(f"{node.lineno}: {ast.unparse(node)} (a parent class's private name)")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "__dict__"
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_private_name_of_a_third_party_package_is_used():
    found = {str(path.relative_to(ROOT)): uses for path in SOURCES if (uses := private_uses(path))}
    assert found == {}


def test_the_private_name_check_sees_each_kind_of_use(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from flask_jwt_extended.view_decorators import _decode_jwt_from_headers\n"
        "from flask import g\n"
        "import sqlalchemy as sa\n"
        "g._jwt_extended_jwt = {}\n"
        "engine = sa.create_engine('sqlite://')\n"
        "sa.engine._should_log_info()\n"
        "from auth_service.extensions import limiter\n"
        "limiter._storage = None\n"
        "record = sa.orm.Mapper\n"
        "parts = sa.util.namedtuple('p', 'a')(1)._replace(a=2)\n"
    )
    uses = private_uses(sample)
    assert sorted(int(use.split(":")[0]) for use in uses) == [1, 4, 6, 8]
