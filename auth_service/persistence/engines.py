"""Database engines: flask-sqlalchemy's, tuned, and one for single statements.

Every request with a token reads its user (a refresh also its token row) before
anything else. Through the ORM session that read opens a transaction: BEGIN, the
SELECT, and a ROLLBACK at teardown, three round trips to PostgreSQL for one row. On
a connection in autocommit mode the same SELECT is one round trip, and sees the same
thing: under READ COMMITTED every statement gets its own snapshot either way. A
statement that must be atomic on its own (a rotation on PostgreSQL, auth_service.services.sessions)
is one round trip there too instead of four. The autocommit engine is that connection
pool: a pool of its own, because switching a pooled connection into and out of
autocommit costs a ``SET`` round trip of its own.
"""

from __future__ import annotations

import select
import time
from typing import NamedTuple

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
        # No pool_pre_ping: a round trip on every checkout, i.e. every request (README,
        # Performance). _ping_idle_connections keeps its point: a server restart is
        # survived without failing a request.
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {
            "connect_args": {"connect_timeout": 5}})
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


class _Compiled(NamedTuple):
    sql: str
    bind_processors: dict
    order: tuple | None  # a positional paramstyle (SQLite's qmark) takes values in SQL order
    # One per selected column: None where the driver's value is the value.
    result_processors: list


class Prepared:
    """A Core statement compiled once per dialect and run as driver SQL.

    Connection.execute finds a statement in the compiled cache by its cache key, which
    it generates on every call by walking the whole statement, then builds an
    execution context that processes every parameter; for a rotation's CTE of sixteen
    parameters that was a fifth of a refresh's CPU. ``execute`` compiles once, applies
    the bind processors itself (UTCDateTime's, so values reach the driver as they
    would otherwise), and hands the SQL to Connection.exec_driver_sql: the
    connection's events, pooling and disconnect handling still apply.

    ``first`` and ``rowcount`` run the statement as a transaction of its own on the
    autocommit engine. On PostgreSQL, when nothing watches that engine's statements,
    they go one step further down: a pooled DBAPI connection and its cursor, without a
    Connection, its execution context and its result object (about 50 of the 170 us
    of CPU a one-row read costs through SQLAlchemy). The pool, its checkout ping and
    its reset still apply, and _run_on_driver turns a driver error into SQLAlchemy's
    exception, dropping a connection the server has closed, as a Connection would.
    """

    def __init__(self, statement: sa.Executable):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def execute(self, connection: sa.Connection, params: dict) -> sa.CursorResult:
        """Run with ``params`` (by name); the result's rows are the driver's, unprocessed."""
        compiled = self._compile(connection.dialect)
        return connection.exec_driver_sql(compiled.sql, _bound(compiled, params))

    def first(self, engine: sa.Engine, params: dict) -> tuple | None:
        """The first row, its values processed by the column types, or None."""
        return self._run(engine, params, _first_row)

    def rowcount(self, engine: sa.Engine, params: dict) -> int:
        """The number of rows the statement matched."""
        return self._run(engine, params, _rowcount)

    def _compile(self, dialect: sa.Dialect) -> _Compiled:
        try:
            return self._compiled[dialect.name]
        except KeyError:
            compiled = self.statement.compile(dialect=dialect)
            columns = getattr(self.statement, "selected_columns", ())
            return self._compiled.setdefault(dialect.name, _Compiled(
                sql=str(compiled),
                bind_processors={name: processor for name, bind in compiled.binds.items()
                                 if (processor := bind.type.dialect_impl(dialect)
                                                  .bind_processor(dialect))},
                order=tuple(compiled.positiontup) if compiled.positional else None,
                result_processors=[
                    column.type.dialect_impl(dialect).result_processor(dialect, None)
                    for column in columns]))

    def _run(self, engine: sa.Engine, params: dict, consume):
        compiled = self._compile(engine.dialect)
        if engine.dialect.name != "postgresql" or _watched(engine):
            with engine.connect() as connection:
                return consume(connection.exec_driver_sql(compiled.sql, _bound(compiled, params)),
                               compiled)
        return _run_on_driver(engine, compiled, _bound(compiled, params), consume)


def _bound(compiled: _Compiled, params: dict) -> dict | tuple:
    processors = compiled.bind_processors
    values = {name: processors[name](value) if name in processors else value
              for name, value in params.items()}
    return values if compiled.order is None else tuple(values[name] for name in compiled.order)


def _first_row(cursor, compiled: _Compiled) -> tuple | None:
    row = cursor.fetchone()
    if row is None:
        return None
    return tuple(value if processor is None else processor(value)
                 for processor, value in zip(compiled.result_processors, row))


def _rowcount(cursor, compiled: _Compiled) -> int:
    return cursor.rowcount


# What a Connection tells about each statement it runs, and a cursor alone does not.
_ENGINE_EVENTS = ("before_execute", "after_execute", "before_cursor_execute",
                  "after_cursor_execute")
_DIALECT_EVENTS = ("do_execute", "handle_error")


def _watched(engine: sa.Engine) -> bool:
    """Whether something sees the engine's statements (event listeners such as tests or
    tracing, SQL logging): they then run through a Connection, which tells them."""
    return (any(getattr(engine.dispatch, name) for name in _ENGINE_EVENTS)
            or any(getattr(engine.dialect.dispatch, name) for name in _DIALECT_EVENTS)
            or engine._should_log_info())


def dispose(app: Flask) -> None:
    """Close every pooled connection of ``app`` (tests that build apps of their own)."""
    with app.app_context():
        db.engine.dispose()
        autocommit_engine().dispose()


def _run_on_driver(engine: sa.Engine, compiled: _Compiled, values, consume):
    """``compiled`` on a pooled DBAPI connection of ``engine`` (autocommit); the outcome
    of ``consume(cursor, compiled)``. Driver errors are raised as engine.connect() and
    Connection.execute raise them (errors.py answers 503 for an unreachable server)."""
    dialect = engine.dialect
    pooled = None
    try:
        pooled = engine.raw_connection()  # the pool's checkout events (the idle ping) run
        cursor = pooled.cursor()
        cursor.execute(compiled.sql, values)
        outcome = consume(cursor, compiled)
        cursor.close()
        return outcome
    except dialect.loaded_dbapi.Error as error:
        # As Connection._handle_dbapi_exception: a connection the server closed is
        # invalidated (the pool opens a new one); the others stay pooled, and the
        # checkout ping finds them dead if the server went away for all of them.
        disconnected = dialect.is_disconnect(
            error, pooled.dbapi_connection if pooled is not None else None, None)
        if disconnected and pooled is not None:
            pooled.invalidate(error)
        raise sa.exc.DBAPIError.instance(
            compiled.sql if pooled is not None else None, values, error,
            dialect.loaded_dbapi.Error, hide_parameters=engine.hide_parameters,
            connection_invalidated=disconnected, dialect=dialect) from error
    finally:
        if pooled is not None:
            pooled.close()  # back to the pool, which resets it (nothing to roll back)


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
        if (idle_since is None or time.monotonic() - idle_since < POOL_PING_AFTER_IDLE_SECONDS) \
                and not _has_input(dbapi_connection):
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
