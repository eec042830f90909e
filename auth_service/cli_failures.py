"""How the ``flask`` command fails: one line on stderr and exit 1, never a traceback.

A bad configuration still lets ``flask --help`` list every command group (the groups
fail when used); a database that is down, missing or not migrated is named in one line
with what to do about it.
"""

from __future__ import annotations

import os

import click
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.exc import DBAPIError

from auth_service.extensions import db
from config import ConfigError


def loaded_by_flask_command() -> bool:
    """Whether the ``flask`` command is loading the app (gunicorn never is)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.find_object(ScriptInfo) is not None


class _Unconfigured(click.Group):
    """A command group as listed, failing with the configuration error when used."""

    def __init__(self, group: click.Group, error: str):
        super().__init__(
            name=group.name, commands=group.commands, params=group.params, help=group.help
        )
        self.error = error

    def invoke(self, ctx: click.Context):
        raise click.ClickException(self.error)


def unconfigured_app(error: ConfigError, groups: list[click.Group]) -> Flask:
    """What the ``flask`` command gets instead of the app when the configuration is bad.

    While it lists or looks up commands: an app whose command groups fail with the one
    line when used, so ``flask --help`` still shows them. Inside a command that needs the
    app itself (``flask run``, ``flask shell``): the one line at once.
    """
    # Production is the default: say so, it is the usual surprise of a fresh shell.
    message = f"configuration error (APP_ENV={os.environ.get('APP_ENV', 'production')}): {error}"
    ctx = click.get_current_context()
    if ctx.parent is not None:
        raise click.ClickException(message)
    stand_in = Flask(__name__)
    for group in groups:
        stand_in.cli.add_command(_Unconfigured(group, message))
    return stand_in


def _where(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"the SQLite file {url.database}"
    port = url.port or {"postgresql": 5432}.get(url.get_backend_name())
    return f"{url.host or 'localhost'}:{port}" if port else str(url.host or "localhost")


def database_problem(migrated: bool) -> str | None:
    """One line on what keeps the database from serving the commands, or None.

    ``migrated``: also require the schema to be at the migrations' head.
    """
    url = db.engine.url
    try:
        with db.engine.connect() as connection:
            if not migrated:
                return None
            current = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        if "does not exist" in reason and "database" in reason:
            return (
                f"the database {url.database!r} does not exist at {_where(url)}: "
                f"create it (createdb {url.database}), then run flask db upgrade"
            )
        return f"cannot reach the database at {_where(url)}: {reason}"
    migrations = current_app.extensions["migrate"].directory
    config = AlembicConfig()
    config.set_main_option("script_location", migrations)
    heads = ScriptDirectory.from_config(config).get_heads()
    if current is None:
        return "the database is not migrated: run flask db upgrade"
    if current not in heads:
        return (
            f"the database is at migration {current}, the code expects {', '.join(heads)}: "
            "run flask db upgrade"
        )
    return None


class DatabaseCommandGroup(AppGroup):
    """An AppGroup whose commands first check the database, and whose database errors
    are one line (``migrated``: the commands need the schema at the migrations' head)."""

    def __init__(self, *args, migrated: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.migrated = migrated

    def invoke(self, ctx: click.Context):
        if ctx.resilient_parsing:
            return super().invoke(ctx)
        if not current_app:
            # As flask's with_appcontext does (the flask command has pushed one already).
            ctx.with_resource(ctx.ensure_object(ScriptInfo).load_app().app_context())
        problem = database_problem(self.migrated)
        if problem:
            raise click.ClickException(problem)
        try:
            return super().invoke(ctx)
        except DBAPIError:
            # Lost on the way (the server stopped, a migration was rolled back).
            problem = database_problem(self.migrated)
            if problem:
                raise click.ClickException(problem) from None
            raise


def guarded(group: click.Group, migrated: bool) -> DatabaseCommandGroup:
    """``group`` (a third party's, such as flask-migrate's ``db``) with the checks of
    DatabaseCommandGroup."""
    return DatabaseCommandGroup(
        name=group.name,
        commands=group.commands,
        callback=group.callback,
        params=group.params,
        help=group.help,
        migrated=migrated,
    )
