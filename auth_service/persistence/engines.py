"""Database engines: flask-sqlalchemy's, tuned, and one for single statements.

Every request with a token reads its user (a refresh also its token row) before
anything else. Through the ORM session that read opens a transaction: BEGIN, the
SELECT, and a ROLLBACK at teardown, three round trips to PostgreSQL for one row. On
a connection in autocommit mode the same SELECT is one round trip, and sees the same
thing: under READ COMMITTED every statement gets its own snapshot either way. A
statement that must be atomic on its own (a rotation on PostgreSQL,
auth_service.services.sessions) is one round trip there too instead of four.

The autocommit engine is that connection pool: a pool of its own, because switching a
pooled connection into and out of autocommit costs a ``SET`` round trip of its own.
Statements run on it through ``Connection.execute`` (or an ORM session bound to it),
whatever listens to the engine: one code path on SQLite and PostgreSQL (docs/adr/1101).
"""

from __future__ import annotations

import select
import time

import sqlalchemy as sa
from flask import Flask, current_app

from auth_service.extensions import db

AUTOCOMMIT_ENGINE = "auth_service.autocommit_engine"

# A pooled connection idle longer than this is pinged before use. A restart of the
# server or an idle timeout closes connections while they sit in the pool; one that
# served a request a moment ago is alive, and pinging it would only add a round trip,
# unless the server has said otherwise: see _ping_idle_connections.
POOL_PING_AFTER_IDLE_SECONDS = 1.0


def init_app(app: Flask) -> None:
    """Bind flask-sqlalchemy, tune its engine and create the autocommit engine."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Writers wait for the lock instead of failing at once.
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 15}})
    else:
        # connect_timeout: an unreachable server answers 503 in seconds instead of hanging a worker.
        # No pool_pre_ping: it costs a round trip on every checkout, i.e. every request;
        # _ping_idle_connections keeps its point: a server restart is survived without
        # failing a request.
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"connect_timeout": 5}})
    db.init_app(app)
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # No network to save here, and a separate engine would not see an in-memory
        # database: the same pool, switched to autocommit for each use.
        single = engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        single = sa.create_engine(engine.url, **{**options, "isolation_level": "AUTOCOMMIT"})
        if not options.get("pool_pre_ping"):
            _ping_idle_connections(engine)
            _ping_idle_connections(single)
    app.extensions[AUTOCOMMIT_ENGINE] = single


def autocommit_engine() -> sa.Engine:
    """The current app's engine for single statements, each its own transaction."""
    return current_app.extensions[AUTOCOMMIT_ENGINE]


def dispose(app: Flask) -> None:
    """Close every pooled connection of ``app`` (tests that build apps of their own)."""
    with app.app_context():
        db.engine.dispose()
        autocommit_engine().dispose()


def _ping_idle_connections(engine: sa.Engine) -> None:
    """pool_pre_ping for connections that sat idle or that the server has hung up on.

    A server that shuts down or terminates a backend sends an error and closes the
    socket, so an idle connection with anything to read is dead: a poll of its socket,
    without a round trip, catches a restart within the idle threshold too (two pools
    per process make that likelier: one of them may see no request in between).
    """

    def checkin(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection, record, proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if (
            idle_since is None or time.monotonic() - idle_since < POOL_PING_AFTER_IDLE_SECONDS
        ) and not _has_input(dbapi_connection):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another one.
            raise sa.exc.DisconnectionError(str(error)) from error

    sa.event.listen(engine, "checkin", checkin)
    sa.event.listen(engine, "checkout", checkout)


def _has_input(dbapi_connection) -> bool:
    """Whether the server sent something (an error, end of file) to an idle connection."""
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    # Enforce ON DELETE CASCADE, which SQLite ignores by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
