"""The database work of the hottest requests, statement by statement.

Every authenticated request checks its token against the database; these tests pin
down that the check (user and session) costs one statement outside any transaction,
and that a refresh is exactly the writes that hold the session, spend the old token and
record the new one (one statement on PostgreSQL), its checks folded into them. A
regression here (an extra query, a lost identity-map hit) is what bench/ would show
as a lower ratio to the floor.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import flask_jwt_extended
import marshmallow
import pytest
import sqlalchemy as sa
import werkzeug.sansio.request
from flask import Response
from flask_jwt_extended import get_current_user, get_jwt, get_jwt_header, get_jwt_request_location
from flask_smorest import Blueprint
from freezegun import freeze_time

from auth_service.extensions import db
from auth_service.http.common import access_required, set_refresh_cookies, token_required
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import RefreshToken, UTCDateTime
from auth_service.security import jwt_checks
from auth_service.services import sessions
from auth_service.services.accounts import find_by_email
from config import TestingConfig
from helpers import claims


@pytest.fixture
def sql_log(app):
    """``with sql_log() as log``: the statements run, and the transactions begun outside
    the autocommit engine."""

    @contextmanager
    def capture():
        log = {"statements": [], "transactions": 0}

        def statement(conn, cursor, text, *args):
            log["statements"].append(" ".join(text.split()[:4]))

        def begin(conn):
            if conn.engine is not single:
                log["transactions"] += 1

        with app.app_context():
            single = autocommit_engine()
            # On SQLite that engine is db.engine switched to autocommit: same events.
            engines = [db.engine] if single.pool is db.engine.pool else [db.engine, single]
            listeners = [
                (engine, name, fn)
                for engine in engines
                for name, fn in (("before_cursor_execute", statement), ("begin", begin))
            ]
            for listener in listeners:
                sa.event.listen(*listener)
            try:
                yield log
            finally:
                for listener in listeners:
                    sa.event.remove(*listener)

    return capture


def test_an_access_token_costs_one_select_and_no_transaction(client, alice_headers, sql_log):
    with sql_log() as log:
        response = client.get("/auth/me", headers=alice_headers)
    assert response.status_code == 200
    assert response.json["email"] == "alice@example.com"
    assert log == {
        "statements": ["SELECT users.id, users.email, users.username,"],
        "transactions": 0,
    }


def test_a_refresh_is_one_read_then_the_writes(app, client, alice_tokens, sql_log):
    with sql_log() as log:
        response = client.post(
            "/auth/refresh", json={"refresh_token": alice_tokens["refresh_token"]}
        )
    assert response.status_code == 200
    # The revocation check reads the token with its owner and session; the writes then
    # check them again as they update (the read is not what decides).
    with app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
    assert log["statements"][0].startswith("SELECT refresh_tokens.jti,")
    if postgres:
        # Touch, spend and record in one statement, its own transaction (rotation._spend).
        assert [s.split()[0] for s in log["statements"]] == ["SELECT", "WITH"]
        assert log["transactions"] == 0
    else:
        assert log["statements"][1:] == [
            "UPDATE sessions SET refreshed_at=?",
            "UPDATE refresh_tokens SET spent_at=?,",
            "INSERT INTO refresh_tokens (jti,",
        ]
        assert log["transactions"] == 1


def test_a_view_that_writes_the_user_still_commits_through_the_session(
    client, alice_tokens, alice_headers, in_db
):
    """The user comes from the autocommit engine, attached to the session: changes still flush."""
    response = client.patch("/users/me", headers=alice_headers, json={"full_name": "Alice B"})
    assert response.status_code == 200
    assert in_db(lambda: find_by_email("alice@example.com").full_name) == "Alice B"


@pytest.mark.parametrize(
    "method, attached",
    [("GET", False), ("HEAD", False), ("POST", True), ("PATCH", True), ("DELETE", True)],
)
def test_only_a_request_that_may_write_gets_its_user_attached(
    make_app, alice_headers, method, attached
):
    """On GET and HEAD the user is a detached copy: no session, no identity map, and a
    relationship it was not loaded with raises instead of quietly costing a query."""
    probe_app = make_app(TestingConfig)

    @access_required(Blueprint("probe", __name__))
    def probe():
        state = sa.inspect(get_current_user())
        return (
            {
                "in_session": state.session is not None,
                "persistent": state.persistent,
                "location": get_jwt_request_location(),
                "type": get_jwt()["type"],
                "alg": get_jwt_header()["alg"],
            },
            200,
            {"X-In-Session": str(state.session is not None)},
        )

    probe_app.add_url_rule("/probe", view_func=probe, methods=[method])
    response = probe_app.test_client().open("/probe", method=method, headers=alice_headers)
    assert response.status_code == 200
    assert response.headers["X-In-Session"] == str(attached)
    if method != "HEAD":
        assert response.json == {
            "in_session": attached,
            "persistent": attached,
            "location": "headers",
            "type": "access",
            "alg": "ES256",
        }


def test_a_request_without_a_session_cookie_does_not_open_the_signed_session(
    app, client, alice_headers, monkeypatch
):
    """Flask builds its cookie signer per request; only the OAuth flow needs the session."""

    def no_signer(app):
        raise AssertionError("the session serializer was built")

    def no_parse(*args, **kwargs):
        raise AssertionError("the Cookie header was parsed")

    monkeypatch.setattr(app.session_interface, "get_signing_serializer", no_signer)
    api_client = app.test_client()  # no cookie jar: no Cookie header, as API clients send
    with monkeypatch.context() as patch:
        patch.setattr(werkzeug.sansio.request, "parse_cookie", no_parse)
        response = api_client.get("/auth/me", headers=alice_headers)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    # The login's refresh cookies (path /auth) ride along, but no session cookie.
    assert client.get_cookie("refresh_token_cookie", path="/auth") is not None
    assert client.get("/auth/me", headers=alice_headers).status_code == 200
    # A request that carries the cookie still opens it (and so meets the signer).
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "anything")
    with pytest.raises(AssertionError, match="serializer was built"):
        client.get("/auth/me", headers=alice_headers)


def test_requests_parse_and_answer_with_schemas_built_once(client, auth, monkeypatch):
    """webargs instantiates a schema given as a class on every request it parses."""
    auth.signup()
    built = []
    init = marshmallow.Schema.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(marshmallow.Schema, "__init__", counting_init)
    tokens = auth.login().json
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert built == []


@pytest.mark.parametrize("method, attached", [("GET", False), ("POST", True)])
def test_a_refresh_token_row_stays_detached_and_its_owner_follows_the_method(
    make_app, alice_tokens, method, attached
):
    """sessions.py writes token rows with statements, so the row read by the revocation
    check never joins the session; its owner does where a view may change it."""
    probe_app = make_app(TestingConfig)

    @token_required(("cookies", "json"), refresh=True)
    def probe():
        token = jwt_checks.token_context().refresh_token
        return {
            "token_in_session": sa.inspect(token).session is not None,
            "user_in_session": sa.inspect(get_current_user()).session is not None,
            "same_user": token.user is get_current_user(),
            "location": get_jwt_request_location(),
        }

    probe_app.add_url_rule("/probe", view_func=probe, methods=[method])
    client = probe_app.test_client()
    if method == "GET":  # from the cookie, as GET /auth/csrf reads it
        client.set_cookie("refresh_token_cookie", alice_tokens["refresh_token"], path="/")
        response = client.get("/probe", headers={"X-CSRF-TOKEN": alice_tokens["csrf_token"]})
    else:
        response = client.post("/probe", json={"refresh_token": alice_tokens["refresh_token"]})
    assert response.status_code == 200, response.json
    assert response.json == {
        "token_in_session": False,
        "user_in_session": attached,
        "same_user": True,
        "location": "cookies" if method == "GET" else "json",
    }


def test_a_statement_on_the_autocommit_engine_binds_values_by_their_types(app, alice_tokens, in_db):
    """A single statement on the autocommit engine processes its values as the column
    types say, and commits on its own."""
    jti = claims(alice_tokens["refresh_token"])["jti"]
    tokens_table = RefreshToken.__table__
    spend = (
        sa.update(tokens_table)
        .where(tokens_table.c.jti == sa.bindparam("j"))
        .values(spent_at=sa.bindparam("at", type_=UTCDateTime))
    )
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with app.app_context(), autocommit_engine().connect() as connection:
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):  # UTCDateTime's check
            connection.execute(spend, {"j": jti, "at": at.replace(tzinfo=None)})
        assert connection.execute(spend, {"j": jti, "at": at}).rowcount == 1
    assert in_db(lambda: db.session.get(RefreshToken, jti).spent_at) == at


def test_a_login_is_one_select_then_the_session_and_its_token(app, auth, sql_log):
    """The user's read, a statement on the autocommit engine (queries.user_by_email), then
    one transaction that inserts the session and its first token, reads the distinct
    devices of the account's recent sign-ins (the new-device alert) and appends
    login_succeeded to the audit chain under its lock (docs/adr/2401)."""
    auth.signup()
    with sql_log() as log:
        response = auth.login()
    assert response.status_code == 200
    chain_lock = (
        "SELECT pg_advisory_xact_lock("
        if sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() == "postgresql"
        else "DELETE FROM audit_events"
    )
    statements = [" ".join(s.split()[:3]) for s in log["statements"]]
    assert statements[4].startswith(chain_lock)
    assert statements[:4] + statements[5:] == [
        "SELECT users.id, users.email,",
        "INSERT INTO sessions",
        "INSERT INTO refresh_tokens",
        "SELECT DISTINCT anon_1.user_agent,",
        "SELECT audit_events.hash FROM",
        "INSERT INTO audit_events",
    ]
    assert log["transactions"] == 1


def test_the_csrf_cookie_is_the_sessions_value_across_refreshes(client, auth):
    """One CSRF value per session: the cookie, the login's answer and every refresh agree."""
    auth.signup()
    login = auth.login()
    assert login.status_code == 200
    csrf = login.json["csrf_token"]
    assert client.get_cookie("csrf_refresh_token").value == csrf
    refreshed = client.post("/auth/refresh", headers={"X-CSRF-TOKEN": csrf})
    assert refreshed.status_code == 200
    assert client.get_cookie("csrf_refresh_token").value == refreshed.json["csrf_token"] == csrf


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {
            "JWT_COOKIE_SECURE": True,
            "JWT_COOKIE_SAMESITE": "Strict",
            "JWT_COOKIE_DOMAIN": "example.com",
        },
        {"JWT_COOKIE_CSRF_PROTECT": False},
        {"JWT_CSRF_IN_COOKIES": False},
    ],
    ids=["defaults", "secure_strict_domain", "no_csrf", "csrf_not_in_cookies"],
)
def test_refresh_cookies_are_flask_jwt_extendeds(app, monkeypatch, settings):
    """Same cookies, byte for byte, as flask-jwt-extended's set_refresh_cookies."""
    for name, value in settings.items():
        monkeypatch.setitem(app.config, name, value)
    now = datetime.now(UTC).replace(microsecond=0)
    token = SimpleNamespace(
        jti="j", family_id="f", created_at=now, expires_at=now + timedelta(days=7)
    )
    with freeze_time(now), app.test_request_context():
        session = SimpleNamespace(
            id="f", aal="aal1", methods=["pwd"], authenticated_at=now, created_at=now
        )
        pair = sessions.encode_pair(1, 0, token, session)
        ours, theirs = Response(), Response()
        set_refresh_cookies(ours, pair)
        flask_jwt_extended.set_refresh_cookies(
            theirs, pair.refresh_token, max_age=pair.refresh_max_age
        )
    assert ours.headers.getlist("Set-Cookie") == theirs.headers.getlist("Set-Cookie")
    csrf_cookie = settings.get("JWT_COOKIE_CSRF_PROTECT", True) and settings.get(
        "JWT_CSRF_IN_COOKIES", True
    )
    assert len(ours.headers.getlist("Set-Cookie")) == (2 if csrf_cookie else 1)
