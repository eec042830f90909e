"""The autocommit engine: the reads and the rotation statement run on it through a
Connection, the same SQL whether or not anything listens, and a driver error leaves its
pool usable."""

from __future__ import annotations

import sqlite3
import threading
import time

import jwt
import pytest
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence import engines, queries
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import RefreshToken, Session, User
from config import TestingConfig
from helpers import bearer, claims

SLEEP = sa.select(sa.func.pg_sleep(sa.bindparam("seconds")))
BACKEND_PID = sa.select(sa.func.pg_backend_pid())
NO_SUCH_TABLE = sa.select(sa.table("no_such_table", sa.column("id")))


@pytest.fixture
def engine(app):
    with app.app_context():
        yield autocommit_engine()


def _columns(instance) -> dict:
    return {
        attr.key: getattr(instance, attr.key) for attr in sa.inspect(type(instance)).column_attrs
    }


def test_reads_load_the_rows_as_the_request_session_does(app, alice_tokens):
    """Column types process the values (aware UTC datetimes, booleans); the objects are
    detached unless attached on purpose."""
    token_claims = claims(alice_tokens["refresh_token"])
    user_id, sid = int(token_claims["sub"]), token_claims["sid"]
    with app.app_context():
        kid = jwt.get_unverified_header(alice_tokens["refresh_token"])["kid"]
        user, session, key_revoked = queries.user_with_session(user_id, sid, kid, attach=False)
        token, token_key_revoked = queries.token_with_owner(
            token_claims["jti"], user_id, sid, kid, attach_owner=False
        )
        assert key_revoked is False and token_key_revoked is False
        assert _columns(user) == _columns(db.session.get(User, user_id))
        assert _columns(session) == _columns(db.session.get(Session, sid))
        assert _columns(token) == _columns(db.session.get(RefreshToken, token_claims["jti"]))
        assert _columns(token.user) == _columns(user)
        assert _columns(token.session) == _columns(session)
        assert user.created_at.tzinfo is not None and session.expires_at.tzinfo is not None
        assert user.is_active is True
        for instance in (user, session, token, token.user, token.session):
            assert sa.inspect(instance).detached
        assert queries.user_with_session(user_id, "no such session", kid, attach=False)[1] is None
        assert queries.user_with_session(user_id + 1000, sid, kid, attach=False) == (
            None,
            None,
            False,
        )
        assert queries.token_with_owner("no such token", user_id, sid, kid, False) == (None, False)
        # A row that is not of the account and session the token names is no row.
        for owner, session_id in ((user_id + 1000, sid), (user_id, "another session")):
            assert queries.token_with_owner(
                token_claims["jti"], owner, session_id, kid, attach_owner=False
            ) == (None, False)
        assert queries.user_by_email("nobody@example.com", attach=False) is None


def test_an_attached_read_reuses_the_instance_the_session_holds(app, alice_tokens):
    token_claims = claims(alice_tokens["refresh_token"])
    user_id = int(token_claims["sub"])
    with app.app_context():
        held = db.session.get(User, user_id)
        assert queries.user_by_email("alice@example.com", attach=True) is held
        kid = jwt.get_unverified_header(alice_tokens["refresh_token"])["kid"]
        assert queries.user_with_session(user_id, token_claims["sid"], kid, attach=True)[0] is held
        token, _ = queries.token_with_owner(
            token_claims["jti"], user_id, token_claims["sid"], kid, attach_owner=True
        )
        assert token.user is held


def _recording_config(statements: list) -> type[TestingConfig]:
    """TestingConfig whose driver connections record the SQL of every cursor.execute:
    what reaches the database, seen below SQLAlchemy and its events."""
    sqlite = TestingConfig.DATABASE_URL.startswith("sqlite")
    if sqlite:

        class Cursor(sqlite3.Cursor):
            def execute(self, sql, *args):
                statements.append(sql)
                return super().execute(sql, *args)

        class Connection(sqlite3.Connection):
            def cursor(self, factory=Cursor):
                return super().cursor(factory)

        connect_args = {"timeout": 15, "factory": Connection}
    else:
        import psycopg2.extensions

        class Cursor(psycopg2.extensions.cursor):
            def execute(self, query, *args):
                statements.append(query)
                return super().execute(query, *args)

        connect_args = {"connect_timeout": 5, "cursor_factory": Cursor}

    class Recording(TestingConfig):
        SQLALCHEMY_ENGINE_OPTIONS = {"connect_args": connect_args}

    return Recording


def test_a_listener_does_not_change_the_sql_that_runs(make_app, auth, monkeypatch):
    """One code path: a tracer listening to the engine sees the statements, and the
    database receives the same ones, through a Connection, as without it."""
    statements = []
    recording_app = make_app(_recording_config(statements))
    # Only the statements of the requests: no ping of a connection that idled meanwhile.
    monkeypatch.setattr(engines, "POOL_PING_AFTER_IDLE_SECONDS", 3600)
    tokens = auth.signup_and_login()
    client = recording_app.test_client()
    with recording_app.app_context():
        single = autocommit_engine()
    connections = []
    sa.event.listen(single, "engine_connect", lambda connection: connections.append(1))

    def me_and_refresh():
        """The statements and Connections of an authenticated read and a refresh."""
        statements.clear()
        connections.clear()
        assert client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 200
        response = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert response.status_code == 200, response.json
        tokens.update(response.json)
        return list(statements), len(connections)

    me_and_refresh()  # opens the pools' connections: the dialect's first queries are not ours
    without = me_and_refresh()
    seen = []
    tracer = (single, "before_cursor_execute", lambda conn, cursor, sql, *args: seen.append(sql))
    sa.event.listen(*tracer)
    try:
        with_tracer = me_and_refresh()
    finally:
        sa.event.remove(*tracer)
    assert with_tracer == without
    assert without[1] >= 1  # the autocommit engine's statements ran through a Connection
    assert any(sql.startswith("SELECT users.id") for sql in without[0])
    assert seen and all(sql in without[0] for sql in seen)


def test_a_driver_error_is_sqlalchemys_and_the_pool_stays_usable(engine):
    with pytest.raises(sa.exc.DBAPIError) as raised:
        with engine.connect() as connection:
            connection.execute(NO_SUCH_TABLE)
    assert "no_such_table" in str(raised.value.orig)
    assert not raised.value.connection_invalidated
    assert engine.pool.checkedout() == 0
    # The next statement runs.
    assert queries.user_with_session(1, "", "", attach=False) == (None, None, False)


def test_a_backend_killed_mid_statement_is_dropped_from_the_pool(engine):
    """The server ends the connection under a running statement: OperationalError
    (errors.py answers 503), and the pool opens a new connection."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    failed = []

    def sleep():
        try:
            with engine.connect() as connection:
                connection.execute(SLEEP, {"seconds": 30})
        except sa.exc.DBAPIError as error:
            failed.append(error)

    sleeper = threading.Thread(target=sleep)
    sleeper.start()
    deadline = time.monotonic() + 10
    with db.engine.connect() as admin:  # poll until the statement is running, then end it
        while not admin.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()"
            )
        ).first():
            assert time.monotonic() < deadline, "the statement never started"
            time.sleep(0.02)
    sleeper.join(10)
    assert not sleeper.is_alive()
    assert len(failed) == 1
    assert isinstance(failed[0], sa.exc.OperationalError)
    assert failed[0].connection_invalidated
    assert engine.pool.checkedout() == 0
    with engine.connect() as connection:  # the next statement runs
        assert connection.execute(BACKEND_PID).scalar() > 0
