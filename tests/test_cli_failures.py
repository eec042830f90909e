"""The ``flask`` command fails in one line on stderr with exit 1: a bad configuration
(while ``flask --help`` still lists every group), a database that is down, missing or
not migrated."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from flask.cli import FlaskGroup

from auth_service import create_app
from auth_service.extensions import db
from config import ProductionConfig, TestingConfig
from helpers import ROOT


class UnsetSecretsConfig(ProductionConfig):
    """Production with no secret, as a fresh shell without APP_ENV has it."""

    READ_ENVIRONMENT = False


def flask_command(config_class) -> FlaskGroup:
    """The ``flask`` command loading the app the way wsgi.py does."""
    return FlaskGroup(create_app=lambda: create_app(config_class))


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_flask_help_lists_every_group_despite_a_bad_configuration():
    result = CliRunner().invoke(flask_command(UnsetSecretsConfig), ["--help"])
    assert result.exit_code == 0
    assert "Traceback" not in result.output
    for group in ("db", "users", "tokens", "run"):
        assert f"\n  {group} " in result.stdout


@pytest.mark.parametrize(
    "args", [["users", "list"], ["tokens", "purge"], ["db", "upgrade"], ["run"], ["shell"]]
)
def test_a_bad_configuration_is_one_line(args):
    line = one_line_error(CliRunner().invoke(flask_command(UnsetSecretsConfig), args))
    assert line.startswith("Error: configuration error (APP_ENV=")
    assert "SECRET_KEY must be set" in line


def test_help_of_a_group_still_works_with_a_bad_configuration():
    result = CliRunner().invoke(flask_command(UnsetSecretsConfig), ["users", "--help"])
    assert result.exit_code == 0
    assert "create-superuser" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _runner(make_app, url: str):
    class Other(TestingConfig):
        DATABASE_URL = url

    return make_app(Other).test_cli_runner()


@pytest.mark.parametrize("args", [["users", "list"], ["tokens", "purge"], ["db", "upgrade"]])
def test_an_unreachable_database_is_one_line(make_app, args):
    port = _free_port()
    runner = _runner(make_app, f"postgresql://nobody@127.0.0.1:{port}/auth_service")
    line = one_line_error(runner.invoke(args=args))
    assert line.startswith(f"Error: cannot reach the database at 127.0.0.1:{port}: ")


@pytest.mark.parametrize("args", [["users", "list"], ["tokens", "purge"]])
def test_an_unmigrated_database_is_one_line(make_app, tmp_path, args):
    runner = _runner(make_app, f"sqlite:///{tmp_path / 'empty.db'}")
    line = one_line_error(runner.invoke(args=args))
    assert line == "Error: the database is not migrated: run flask db upgrade"


def test_a_database_behind_the_migrations_is_one_line(make_app, tmp_path):
    runner = _runner(make_app, f"sqlite:///{tmp_path / 'old.db'}")
    assert runner.invoke(args=["db", "upgrade", "0004"]).exit_code == 0
    line = one_line_error(runner.invoke(args=["users", "list"]))
    scripts = AlembicConfig(str(ROOT / "migrations" / "alembic.ini"))
    scripts.set_main_option("script_location", str(ROOT / "migrations"))
    head = ScriptDirectory.from_config(scripts).get_current_head()
    assert line == (
        f"Error: the database is at migration 0004, the code expects {head}: run flask db upgrade"
    )
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert runner.invoke(args=["users", "list"]).output == "0 user(s).\n"


def test_a_missing_sqlite_directory_is_one_line(make_app, tmp_path):
    missing = tmp_path / "nowhere" / "auth.db"
    runner = _runner(make_app, f"sqlite:///{missing}")
    line = one_line_error(runner.invoke(args=["users", "list"]))
    assert line.startswith(f"Error: cannot reach the database at the SQLite file {missing}")
    assert not Path(missing).parent.exists()


def test_a_missing_postgresql_database_is_one_line(make_app, app):
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL names a missing database; SQLite creates the file")
    runner = _runner(make_app, url.set(database="auth_service_missing_db").render_as_string(False))
    line = one_line_error(runner.invoke(args=["users", "list"]))
    assert "'auth_service_missing_db' does not exist" in line
    assert "createdb auth_service_missing_db" in line
