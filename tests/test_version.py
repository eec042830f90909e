"""The version: written once (auth_service/version.py), read by pyproject.toml, reported
as auth_service.__version__, by /healthz and ``python -m auth_service --version``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib

from click.testing import CliRunner

import auth_service
from auth_service.__main__ import cli
from helpers import ROOT


def test_the_version_is_a_release_or_a_dev_release():
    # X.Y.Z, or X.Y.Z.devN between releases (docs/development.md): both PEP 440.
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", auth_service.__version__)


def test_pyproject_reads_the_version_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "auth_service.version.__version__"
    # setuptools reads the literal without importing the package (which needs a config).
    source = ast.parse((ROOT / "auth_service" / "version.py").read_text(encoding="utf-8"))
    literals = [
        node.value.value
        for node in source.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert literals == [auth_service.__version__]


def test_healthz_reports_the_version(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "version": auth_service.__version__}


def test_the_document_describes_the_version_field(client):
    document = client.get("/openapi.json").json
    operation = document["paths"]["/healthz"]["get"]
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert schema["properties"]["version"]["type"] == "string"


def test_version_option_names_auth_service_first():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"auth_service {auth_service.__version__}"
    assert [line.split()[0] for line in lines[1:]] == ["Python", "Flask", "Werkzeug"]


def test_python_m_auth_service_version_runs_without_a_configuration(tmp_path):
    # As an operator types it, in a fresh shell: no APP_ENV, no secrets, no database.
    result = subprocess.run(
        [sys.executable, "-m", "auth_service", "--version"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"auth_service {auth_service.__version__}"
    assert result.stderr == ""
