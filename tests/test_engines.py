"""engines.Prepared on the autocommit engine: the same rows and errors as a Connection
gives, and on PostgreSQL no Connection at all unless something watches the statements."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from auth_service.persistence import queries
from auth_service.persistence.engines import Prepared, autocommit_engine
from auth_service.extensions import db
from auth_service.persistence.models import User

SLEEP = Prepared(sa.select(sa.func.pg_sleep(sa.bindparam("seconds"))))
BACKEND_PID = Prepared(sa.select(sa.func.pg_backend_pid()))
NO_SUCH_TABLE = Prepared(sa.select(sa.table("no_such_table", sa.column("id"))))


@pytest.fixture
def engine(app):
    with app.app_context():
        yield autocommit_engine()


def test_a_row_is_what_a_connection_reads(engine, auth):
    """Column types process the values (aware UTC datetimes, booleans) on both paths."""
    auth.signup()
    user_id = db.session.scalar(sa.select(User.id))
    params = {"id": user_id, "sid": "no such session"}
    with engine.connect() as connection:
        expected = tuple(connection.execute(queries._USER_WITH_SESSION.statement, params).one())
    row = queries._USER_WITH_SESSION.first(engine, params)
    assert row == expected
    assert all(value.tzinfo is not None for value in row if hasattr(value, "tzinfo"))
    assert queries._USER_WITH_SESSION.first(engine, params | {"id": user_id + 1000}) is None


def test_statements_skip_the_connection_unless_something_listens(engine, client,
                                                                  alice_headers, monkeypatch):
    connects = []
    real_connect = engine.connect
    monkeypatch.setattr(engine, "connect", lambda: connects.append(1) or real_connect())
    assert client.get("/auth/me", headers=alice_headers).status_code == 200
    postgres = engine.dialect.name == "postgresql"
    # SQLite's autocommit engine is the session's pool in autocommit mode, set per Connection.
    assert connects == ([] if postgres else [1])

    seen = []

    def listener(conn, cursor, statement, *args):
        seen.append(statement.split()[0])

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        assert client.get("/auth/me", headers=alice_headers).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert seen == ["SELECT"]  # a listener sees every statement, through a Connection
    assert len(connects) == (1 if postgres else 2)


def test_a_driver_error_is_sqlalchemys_and_the_pool_stays_usable(engine):
    with pytest.raises(sa.exc.DBAPIError) as raised:
        NO_SUCH_TABLE.first(engine, {})
    assert "no_such_table" in str(raised.value.orig)
    assert not raised.value.connection_invalidated
    # The next statement runs.
    assert queries._USER_WITH_SESSION.first(engine, {"id": 1, "sid": ""}) is None


def test_a_backend_killed_mid_statement_is_dropped_from_the_pool(engine):
    """The server ends the connection under a running statement: OperationalError, as a
    Connection raises it (errors.py answers 503), and the pool opens a new connection."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    failed = []

    def sleep():
        try:
            SLEEP.first(engine, {"seconds": 30})
        except sa.exc.DBAPIError as error:
            failed.append(error)

    sleeper = threading.Thread(target=sleep)
    sleeper.start()
    deadline = time.monotonic() + 10
    with db.engine.connect() as admin:  # poll until the statement is running, then end it
        while not admin.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()")).first():
            assert time.monotonic() < deadline, "the statement never started"
            time.sleep(0.02)
    sleeper.join(10)
    assert not sleeper.is_alive()
    assert len(failed) == 1
    assert isinstance(failed[0], sa.exc.OperationalError)
    assert failed[0].connection_invalidated
    assert engine.pool.checkedout() == 0
    assert BACKEND_PID.first(engine, {})[0] > 0  # the next statement runs
