"""requirements*.in name every third-party package the code imports, and the locks
compiled from them (requirements*.txt) pin each of those with hashes."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Code that ships (the image copies these) needs requirements.in; the rest requirements-dev.in.
RUNTIME = ["auth_service", "migrations", "config.py", "wsgi.py", "gunicorn.conf.py"]
DEVELOPMENT = ["tests", "bench"]


def python_files(places: list[str]) -> list[Path]:
    """The .py files of these files and folders."""
    found = []
    for place in places:
        path = ROOT / place
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return found


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def local_modules() -> set[str]:
    """Names the repo itself provides: its packages, top-level modules, and the test
    helpers that pytest puts on sys.path (tests/helpers.py, tests/oauth/dance.py, ...)."""
    files = python_files(RUNTIME + DEVELOPMENT)
    return (
        {path.stem for path in files}
        | {path.parent.name for path in files}
        | {"auth_service", "bench", "tests", "config", "wsgi", "migrations"}
    )


def imported_distributions(places: list[str]) -> dict[str, set[str]]:
    """Distribution -> the files importing it, for the third-party imports in ``places``."""
    local, owners = local_modules(), packages_distributions()
    found: dict[str, set[str]] = {}
    for path in python_files(places):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local:
                    continue
                assert top in owners, (
                    f"{path.relative_to(ROOT)} imports {top}, installed by nothing"
                )
                for distribution in owners[top]:
                    found.setdefault(normalized(distribution), set()).add(
                        str(path.relative_to(ROOT))
                    )
    return found


def listed(*names: str) -> set[str]:
    """The packages named in these requirement files (``-r`` and ``-c`` lines skipped)."""
    packages = set()
    for name in names:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                packages.add(normalized(re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0]))
    return packages


def locked(name: str) -> dict[str, str]:
    """Package -> its requirement block in the lock ``name``."""
    blocks = re.split(r"\n(?=\S)", (ROOT / name).read_text())
    return {
        normalized(block.split("==", 1)[0]): block
        for block in blocks
        if re.match(r"[A-Za-z0-9]", block)
    }


@pytest.mark.parametrize(
    ("places", "files"),
    [
        (RUNTIME, ("requirements.in",)),
        (DEVELOPMENT, ("requirements.in", "requirements-dev.in")),
    ],
    ids=["runtime", "development"],
)
def test_every_imported_package_is_a_direct_dependency(places, files):
    missing = {
        distribution: sorted(users)
        for distribution, users in imported_distributions(places).items()
        if distribution not in listed(*files)
    }
    assert not missing, f"imported but not listed in {' or '.join(files)}: {missing}"


@pytest.mark.parametrize(
    ("source", "lock"),
    [
        ("requirements.in", "requirements.txt"),
        ("requirements-dev.in", "requirements-dev.txt"),
    ],
)
def test_the_lock_pins_every_package_with_hashes(source, lock):
    blocks = locked(lock)
    assert listed(source) <= set(blocks), f"{source} changed: run make lock"
    for package, block in blocks.items():
        assert re.match(r"\S+==\S+ \\\n", block), block
        assert "--hash=sha256:" in block, f"{package} has no hash in {lock}"


def test_both_locks_pin_the_same_versions():
    runtime, development = locked("requirements.txt"), locked("requirements-dev.txt")
    assert {package: block.split()[0] for package, block in runtime.items()} == {
        package: development[package].split()[0] for package in runtime
    }
