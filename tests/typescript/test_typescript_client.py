"""A TypeScript client generated from the API document compiles against example.ts.

openapi-typescript turns /openapi.json into types, and tsc checks example.ts (a small
client on openapi-fetch) against them: renaming an operationId, a field or a status
that clients rely on fails here. The packages are pinned in package-lock.json;
``make test-typescript`` installs them (npm ci) and runs this file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from helpers import unavailable

HERE = Path(__file__).resolve().parent
BIN = HERE / "node_modules" / ".bin"


def _tool(name: str) -> str:
    if not (BIN / name).exists() or not shutil.which("node"):
        unavailable(
            f"{name} is not installed in tests/typescript", "make test-typescript runs npm ci"
        )
    return str(BIN / name)


def _run(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def _type_check(document: dict, workdir: Path) -> subprocess.CompletedProcess:
    """Generate api.d.ts from ``document`` in ``workdir`` and run tsc on example.ts."""
    generate, tsc = _tool("openapi-typescript"), _tool("tsc")
    (workdir / "openapi.json").write_text(json.dumps(document))
    for name in ("example.ts", "tsconfig.json"):
        shutil.copy(HERE / name, workdir / name)
    (workdir / "node_modules").symlink_to(HERE / "node_modules")
    generated = _run(generate, "openapi.json", "-o", "api.d.ts", cwd=workdir)
    assert generated.returncode == 0, generated.stderr
    return _run(tsc, "-p", "tsconfig.json", cwd=workdir)


def test_generated_client_type_checks_the_example(client, tmp_path):
    checked = _type_check(client.get("/openapi.json").json, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_breaking_change_fails_the_check(client, tmp_path):
    """The check has teeth: the same document with login's operationId renamed fails."""
    document = client.get("/openapi.json").json
    document["paths"]["/auth/login"]["post"]["operationId"] = "signIn"
    checked = _type_check(document, tmp_path)
    assert checked.returncode != 0
    assert "'login' does not exist" in checked.stdout
