"""Write docs/configuration.md from config.py: ``python docs/generate_configuration.py``
(``make docs``); with ``--check`` it writes nothing and exits 1 when the page is stale.

A setting is an upper-case attribute of ``config.Config``; its description is the block
of ``#:`` comments right above it, its default the attribute's value spelled as the
environment variable would be. config.py is read with ``ast``, never imported, so the
page depends neither on this machine's environment and ``.env`` nor on where the
checkout lives.
"""

from __future__ import annotations

import ast
import re
import sys
from datetime import timedelta
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.py"
PAGE = ROOT / "docs" / "configuration.md"
ADR_DIR = ROOT / "docs" / "adr"
VARIANTS = ("DevelopmentConfig", "TestingConfig")
HEADER = (
    "<!-- Generated from config.py by docs/generate_configuration.py (make docs). "
    "Edit config.py, not this file. -->"
)


class RandomPerRun(str):
    """What ``secrets.token_urlsafe`` stands for on the page."""


# What config.py's expressions see here: an empty environment, the checkout as ".".
NAMESPACE = {
    "timedelta": timedelta,
    "BASE_DIR": PurePosixPath("."),
    "INSTANCE_DIR": PurePosixPath("instance"),
    "os": SimpleNamespace(environ={}),
    "secrets": SimpleNamespace(token_urlsafe=lambda size: RandomPerRun()),
    "random_encryption_key": lambda: RandomPerRun(),
}


class Setting:
    """One documented name: where config.py assigns it, its value and description."""

    def __init__(self, name: str, node: ast.stmt, description: str):
        self.name, self.node, self.description = name, node, description
        self.value = None


def _assigned_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target = node.target
    else:
        return None
    return target.id if isinstance(target, ast.Name) and target.id.isupper() else None


def _description(lines: list[str], node: ast.stmt) -> str:
    """The ``#:`` comment lines right above ``node``, joined into one line."""
    found = []
    index = node.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(found)


def _assignments(body: list[ast.stmt], lines: list[str]) -> dict[str, Setting]:
    return {
        name: Setting(name, node, _description(lines, node))
        for node in body
        if (name := _assigned_name(node))
    }


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)


def read_config(path: Path = CONFIG) -> SimpleNamespace:
    """The settings, the variants' overrides and the other variables config.py reads."""
    source = path.read_text()
    tree, lines = ast.parse(source), source.splitlines()
    namespace = dict(NAMESPACE)
    module_variables = {}
    for name, setting in _assignments(tree.body, lines).items():
        if setting.description:  # a documented variable: evaluated, then usable below
            namespace[name] = setting.value = _evaluate(setting.node.value, namespace)
            module_variables[name] = setting
    settings = _assignments(_class(tree, "Config").body, lines)
    for setting in settings.values():
        setting.value = _evaluate(setting.node.value, namespace)
    variants = {}
    for variant in VARIANTS:
        node = _class(tree, variant)
        variants[variant] = (
            ast.get_docstring(node),
            {
                name: _evaluate(setting.node.value, namespace)
                for name, setting in _assignments(node.body, lines).items()
                if name in settings
            },
        )
    return SimpleNamespace(
        docstring=ast.get_docstring(tree),
        settings=settings,
        variants=variants,
        module_variables=module_variables,
        environ_reads=_environ_reads(tree),
    )


def _evaluate(expression: ast.expr, namespace: dict):
    return eval(compile(ast.Expression(expression), str(CONFIG), "eval"), dict(namespace))


def _environ_reads(tree: ast.Module) -> set[str]:
    """Names config.py reads straight from ``os.environ`` (``.get(NAME)`` or ``[NAME]``)."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _is_environ(node.func.value)
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
        elif (
            isinstance(node, ast.Subscript)
            and _is_environ(node.value)
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(node.slice.value)
    return names


def _is_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def environment_variables(path: Path = CONFIG) -> set[str]:
    """Every environment variable config.py reads: the settings and the others."""
    config = read_config(path)
    return set(config.settings) | config.environ_reads


def spelled(value) -> str:
    """``value`` as the environment variable would spell it, in Markdown."""
    if isinstance(value, RandomPerRun):
        return "random per run"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, timedelta):
        value = int(value.total_seconds())
    elif isinstance(value, float):
        value = f"{value:g}"
    elif isinstance(value, (tuple, list)):
        value = ",".join(value)
    return f"`{value}`" if str(value) else "empty"


def _linked(text: str) -> str:
    """Cell text with ``|`` escaped and "ADR NNNN" / "docs/page.md" turned into links."""

    def adr(match):
        found = sorted(ADR_DIR.glob(f"{match.group(1)}-*.md"))
        return f"[{match.group(0)}](adr/{found[0].name})" if found else match.group(0)

    text = re.sub(r"ADR (\d{4})", adr, text.replace("|", "\\|"))
    return re.sub(r"docs/([a-z-]+\.md)", r"[\1](\1)", text)


def _flat(docstring: str) -> str:
    return " ".join(docstring.split()).replace("``", "`")


def render(path: Path = CONFIG) -> str:
    """The Markdown of docs/configuration.md."""
    config = read_config(path)
    missing = sorted(
        name
        for name, setting in (config.settings | config.module_variables).items()
        if not setting.description
    )
    undocumented = sorted(
        config.environ_reads - set(config.settings) - set(config.module_variables)
    )
    if missing or undocumented:
        raise SystemExit(f"config.py: no #: description for {', '.join(missing + undocumented)}")
    (dev_doc, dev), (test_doc, test) = (config.variants[name] for name in VARIANTS)
    out = [
        HEADER,
        "",
        "# Configuration",
        "",
        config.docstring.replace("``", "`"),
        "",
        "Variables that gunicorn, the container entrypoint and docker compose read are "
        "listed in [deployment.md](deployment.md#variables).",
        "",
        "## Settings",
        "",
        "The Development and Testing columns give what the two other config classes "
        "change; an empty cell keeps the default.",
        "",
        f"- `DevelopmentConfig` (`APP_ENV=development`): {_flat(dev_doc)}",
        f"- `TestingConfig` (passed to `create_app` by the test suite): {_flat(test_doc)}",
        "",
        "| Setting | Default | Development | Testing | What it does |",
        "|---|---|---|---|---|",
    ]
    for name, setting in config.settings.items():
        cells = [
            f"`{name}`",
            spelled(setting.value),
            spelled(dev[name]) if name in dev else "",
            spelled(test[name]) if name in test else "",
            _linked(setting.description),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        "## Also read by config.py",
        "",
        "| Variable | Default | What it does |",
        "|---|---|---|",
    ]
    for name, variable in config.module_variables.items():
        out.append(f"| `{name}` | {spelled(variable.value)} | {_linked(variable.description)} |")
    return "\n".join(out) + "\n"


def write_or_check(page: Path, text: str, argv: list[str]) -> int:
    """Write ``text`` to ``page``; with ``--check`` write nothing and return 1 if it differs."""
    if "--check" in argv:
        if page.read_text() != text:
            print(f"{page.relative_to(ROOT)} is out of date: run make docs", file=sys.stderr)
            return 1
        return 0
    page.write_text(text)
    return 0


def main(argv: list[str]) -> int:
    return write_or_check(PAGE, render(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
