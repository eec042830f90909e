"""Token rules: transport, rotation, reuse detection, grace window, concurrency and
expiry. Forged, misplaced and malformed tokens: tests/security/test_jwt_attacks.py."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import jwt
import pytest
import sqlalchemy as sa
from flask_jwt_extended import create_refresh_token
from freezegun import freeze_time
from sqlalchemy.exc import OperationalError

from auth_service.extensions import db
from auth_service.persistence.models import RefreshToken, User
from auth_service.services import rotation as tokens_module
from helpers import (
    LOGIN_TIME,
    ROOT,
    claims,
    csrf_header,
    family_rows,
    me,
    refresh,
    set_cookies,
)

WEEK = timedelta(days=7)


def token_row(in_db, refresh_token: str) -> RefreshToken:
    """The refresh_tokens row of ``refresh_token``."""
    return in_db(lambda: db.session.get(RefreshToken, claims(refresh_token)["jti"]))


def live(rows: list[RefreshToken]) -> list[RefreshToken]:
    """The rows neither spent nor revoked."""
    return [row for row in rows if row.spent_at is None and row.revoked_at is None]


def refresh_with_cookie(client, csrf: str | None = None):
    """Refresh the way a browser does: the cookie plus the CSRF header."""
    headers = csrf_header(client) if csrf is None else {"X-CSRF-TOKEN": csrf}
    return client.post("/auth/refresh", headers=headers)


# --- login and transport -------------------------------------------------------------


def test_login_returns_bearer_pair(alice_tokens):
    assert alice_tokens["token_type"] == "bearer"
    assert alice_tokens["expires_in"] == 900
    # RFC 9068: an access token says what it is in its header, a refresh token says
    # otherwise there (and in flask-jwt-extended's ``type`` claim).
    assert jwt.get_unverified_header(alice_tokens["access_token"])["typ"] == "at+jwt"
    assert "type" not in claims(alice_tokens["access_token"])
    assert jwt.get_unverified_header(alice_tokens["refresh_token"])["typ"] == "refresh+jwt"
    assert claims(alice_tokens["refresh_token"])["type"] == "refresh"


def test_login_sets_http_only_refresh_cookie_limited_to_auth(auth):
    auth.signup()
    with freeze_time(LOGIN_TIME):
        response = auth.login()

    cookie = set_cookies(response)["refresh_token_cookie"]
    assert cookie["value"] == response.json["refresh_token"]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/auth"
    assert int(cookie["max-age"]) == WEEK.total_seconds()


def test_login_sets_readable_csrf_cookie(auth):
    auth.signup()
    response = auth.login()

    cookie = set_cookies(response)["csrf_refresh_token"]
    assert cookie["value"] == claims(response.json["refresh_token"])["csrf"]
    assert "httponly" not in cookie
    assert cookie["path"] == "/"
    assert cookie["secure"] is True


@pytest.mark.parametrize(
    ("transport", "in_body", "in_cookie"),
    [
        ("both", True, True),
        ("cookie", False, True),
        ("body", True, False),
    ],
)
def test_login_refresh_transport(app, auth, monkeypatch, transport, in_body, in_cookie):
    monkeypatch.setitem(app.config, "LOGIN_REFRESH_TRANSPORT", transport)
    auth.signup()

    response = auth.login()

    assert response.status_code == 200
    assert response.json["access_token"]
    assert ("refresh_token" in response.json) is in_body
    assert ("refresh_token_cookie" in set_cookies(response)) is in_cookie


def test_refresh_via_body_answers_in_body(client, alice_tokens):
    response = refresh(client, alice_tokens["refresh_token"])

    assert response.status_code == 200
    assert response.json["refresh_token"] != alice_tokens["refresh_token"]
    assert response.json["token_type"] == "bearer"
    assert "refresh_token_cookie" not in set_cookies(response)


def test_refresh_via_cookie_answers_in_cookie(client, alice_tokens):
    response = refresh_with_cookie(client)

    assert response.status_code == 200
    assert "refresh_token" not in response.json
    new_cookie = set_cookies(response)["refresh_token_cookie"]
    assert new_cookie["value"] != alice_tokens["refresh_token"]
    assert client.get_cookie("refresh_token_cookie", path="/auth").value == new_cookie["value"]
    assert me(client, response.json["access_token"]).status_code == 200


def test_rotated_cookie_and_csrf_work_for_the_next_refresh(client, alice_tokens):
    assert refresh_with_cookie(client).status_code == 200

    response = refresh_with_cookie(client)

    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-CSRF-TOKEN": "wrong"}, {"X-CSRF-TOKEN": ""}],
    ids=["missing", "wrong", "empty"],
)
def test_refresh_cookie_needs_matching_csrf_header(client, alice_tokens, in_db, headers):
    response = client.post("/auth/refresh", headers=headers)

    assert response.status_code == 403
    assert response.json["error"] == "csrf_failed"
    assert token_row(in_db, alice_tokens["refresh_token"]).spent_at is None


# --- rotation and reuse detection -----------------------------------------------------


def test_rotation_spends_the_presented_token(client, alice_tokens, in_db):
    child = refresh(client, alice_tokens["refresh_token"]).json["refresh_token"]

    parent_row = token_row(in_db, alice_tokens["refresh_token"])
    assert parent_row.spent_at is not None
    assert parent_row.replaced_by == claims(child)["jti"]
    assert claims(child)["sid"] == claims(alice_tokens["refresh_token"])["sid"]
    assert [row.jti for row in live(family_rows(in_db, child))] == [claims(child)["jti"]]


def test_rotated_child_works(client, alice_tokens):
    child = refresh(client, alice_tokens["refresh_token"]).json

    assert me(client, child["access_token"]).status_code == 200
    assert refresh(client, child["refresh_token"]).status_code == 200


def test_reuse_after_grace_window_revokes_the_whole_family(client, auth, in_db):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        parent = auth.login().json["refresh_token"]
        child = refresh(client, parent).json["refresh_token"]
        frozen.tick(timedelta(seconds=3))

        reused = refresh(client, parent)
        child_after = refresh(client, child)

    assert reused.status_code == 401
    assert reused.json["error"] == "token_reused"
    assert child_after.status_code == 401
    rows = family_rows(in_db, parent)
    assert len(rows) == 2
    assert all(row.revoked_at is not None for row in rows)
    assert {row.revoked_reason for row in rows} == {"reuse_detected"}


def test_reuse_does_not_touch_other_sessions(client, auth):
    auth.signup()
    other_session = auth.login().json["refresh_token"]
    with freeze_time(LOGIN_TIME) as frozen:
        parent = auth.login().json["refresh_token"]
        refresh(client, parent)
        frozen.tick(timedelta(seconds=11))
        assert refresh(client, parent).status_code == 401

    assert refresh(client, other_session).status_code == 200


@pytest.mark.parametrize("delay", [0, 1])
def test_duplicate_refresh_within_grace_returns_the_same_token(client, auth, in_db, delay):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        parent = auth.login().json["refresh_token"]
        first = refresh(client, parent)
        frozen.tick(timedelta(seconds=delay))

        duplicate = refresh(client, parent)

    assert duplicate.status_code == 200
    assert duplicate.json["refresh_token"] == first.json["refresh_token"]
    live_rows = live(family_rows(in_db, parent))
    assert [row.jti for row in live_rows] == [claims(first.json["refresh_token"])["jti"]]


def test_grace_window_follows_configuration(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "REFRESH_REUSE_GRACE_SECONDS", 0)
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        parent = auth.login().json["refresh_token"]
        refresh(client, parent)
        frozen.tick(timedelta(seconds=1))

        reused = refresh(client, parent)

    assert reused.status_code == 401
    assert reused.json["error"] == "token_reused"


def parallel_refreshes(app, token: str, workers: int) -> list[tuple[int, dict]]:
    """``workers`` clients presenting ``token`` at the same moment: (status, body) each."""
    start = threading.Barrier(workers)

    def refresh_in_thread(_):
        client = app.test_client()
        start.wait(timeout=30)
        response = refresh(client, token)
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(refresh_in_thread, range(workers)))


@pytest.mark.parametrize("attempt", range(10))
def test_two_tabs_refreshing_at_once_both_get_the_one_child(app, auth, in_db, attempt):
    tokens = auth.signup_and_login()

    results = parallel_refreshes(app, tokens["refresh_token"], workers=2)

    assert [status for status, _ in results] == [200, 200], results
    children = {body["refresh_token"] for _, body in results}
    assert len(children) == 1
    live_rows = live(family_rows(in_db, tokens["refresh_token"]))
    assert [row.jti for row in live_rows] == [claims(children.pop())["jti"]]


def test_many_parallel_presentations_of_one_token_are_reuse(app, alice_tokens, in_db):
    """More presentations than two tabs explain: one child is born, at most two clients
    get it, and the session ends."""
    results = parallel_refreshes(app, alice_tokens["refresh_token"], workers=10)

    succeeded = [body for status, body in results if status == 200]
    assert 1 <= len(succeeded) <= 2, results
    assert len({body["refresh_token"] for body in succeeded}) == 1
    for status, body in results:
        if status != 200:
            assert status == 401, results
            assert body["error"] in {"token_reused", "token_revoked"}
    rows = family_rows(in_db, alice_tokens["refresh_token"])
    assert len(rows) == 2
    assert live(rows) == []
    assert refresh(app.test_client(), succeeded[0]["refresh_token"]).status_code == 401


def test_the_grace_window_answers_a_spent_token_once(client, auth, in_db):
    auth.signup()
    with freeze_time(LOGIN_TIME):
        parent = auth.login().json["refresh_token"]
        first = refresh(client, parent)
        duplicate = refresh(client, parent)

        third = refresh(client, parent)

    assert duplicate.json["refresh_token"] == first.json["refresh_token"]
    assert third.status_code == 401
    assert third.json["error"] == "token_reused"
    assert live(family_rows(in_db, parent)) == []


# --- expiry --------------------------------------------------------------------------


def test_rotation_never_extends_the_session(client, auth, in_db):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        token = auth.login().json["refresh_token"]
        for day in (1, 3, 6):
            frozen.move_to(LOGIN_TIME + timedelta(days=day))
            token = refresh(client, token).json["refresh_token"]

            assert claims(token)["exp"] == (LOGIN_TIME + WEEK).timestamp()
            assert token_row(in_db, token).expires_at == LOGIN_TIME + WEEK


def test_refresh_cookie_lives_only_as_long_as_the_session(client, auth):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        auth.login()
        frozen.move_to(LOGIN_TIME + timedelta(days=2))

        response = refresh_with_cookie(client)

    cookies = set_cookies(response)
    assert int(cookies["refresh_token_cookie"]["max-age"]) == timedelta(days=5).total_seconds()
    assert int(cookies["csrf_refresh_token"]["max-age"]) == timedelta(days=5).total_seconds()


def test_refresh_fails_once_the_session_is_a_week_old(client, auth):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        token = auth.login().json["refresh_token"]
        frozen.move_to(LOGIN_TIME + timedelta(days=6))
        token = refresh(client, token).json["refresh_token"]
        frozen.move_to(LOGIN_TIME + WEEK + timedelta(seconds=1))

        response = refresh(client, token)

    assert response.status_code == 401
    assert response.json["error"] == "token_expired"


def test_access_token_expires_after_15_minutes(client, auth):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        access = auth.login().json["access_token"]
        frozen.move_to(LOGIN_TIME + timedelta(minutes=15) - timedelta(seconds=1))
        assert me(client, access).status_code == 200
        frozen.move_to(LOGIN_TIME + timedelta(minutes=15))

        response = me(client, access)

    assert response.status_code == 401
    assert response.json["error"] == "token_expired"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- the token format --------------------------------------------------------------------


def published_key(client, token: str):
    """The key of the JWKS that ``token``'s header names, as PyJWT loads it."""
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [key for key in client.get("/.well-known/jwks.json").json["keys"] if key["kid"] == kid]
    return jwt.PyJWK(jwk)


def test_access_tokens_verify_with_a_standard_library_knowing_only_the_jwks(
    app, client, alice_tokens
):
    """Services that trust these tokens verify them with any JWT library and the JWKS:
    RFC 9068's header and claims, the session and token version, and how the session
    was proven (RFC 8176 amr, aal, auth_time); nothing flask-jwt-extended would add."""
    token = alice_tokens["access_token"]
    key = published_key(client, token)
    verified = jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        issuer="https://auth.example.test",
        audience="api",
        options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]},
    )
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": key.key_id, "typ": "at+jwt"}
    assert set(verified) == {
        *("iss", "sub", "aud", "client_id", "iat", "exp", "jti"),
        *("sid", "ver", "aal", "amr", "auth_time"),
    }
    assert verified["client_id"] == "auth_service"
    assert (
        verified["exp"] - verified["iat"] == app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()
    )


def test_refresh_tokens_carry_flask_jwt_extendeds_claims_for_this_service_alone(
    app, client, alice_tokens
):
    """A refresh token is signed by the same key but addressed to the issuer itself, with
    the CSRF value of the refresh cookie; no resource server takes it (typ, aud)."""
    token = alice_tokens["refresh_token"]
    key = published_key(client, token)
    verified = jwt.decode(token, key, algorithms=["ES256"], audience="https://auth.example.test")
    assert jwt.get_unverified_header(token) == {
        "alg": "ES256",
        "kid": key.key_id,
        "typ": "refresh+jwt",
    }
    with app.app_context():
        made_by_the_library = claims(create_refresh_token(identity="1"))
    assert set(verified) == set(made_by_the_library) | {"sid", "ver", "csrf"}
    assert verified["type"] == "refresh" and verified["fresh"] is False
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=["ES256"], audience="api")


# --- what the one-statement rotation checks ---------------------------------------------


def _change_owner(in_db, **values) -> None:
    """Change Alice's row directly, as an operator's UPDATE would: no token is revoked."""

    def change():
        db.session.execute(
            sa.update(User).where(User.email == "alice@example.com").values(**values)
        )
        db.session.commit()

    in_db(change)


@pytest.mark.parametrize(
    "change, error",
    [
        ({"is_active": False}, "invalid_token"),
        ({"token_version": User.token_version + 1}, "invalid_token"),
    ],
    ids=["deactivated", "token-version"],
)
def test_a_refresh_token_of_an_owner_who_changed_is_not_spent(
    client, alice_tokens, in_db, change, error
):
    """The rotation statement checks the owner as it spends: the token stays unspent."""
    _change_owner(in_db, **change)

    response = refresh(client, alice_tokens["refresh_token"])

    assert response.status_code == 401
    assert response.json["error"] == error
    assert [
        (row.spent_at, row.replaced_by) for row in family_rows(in_db, alice_tokens["refresh_token"])
    ] == [(None, None)]


def test_the_rotation_records_a_child_that_inherits_the_family_and_its_expiry(
    client, alice_tokens, in_db
):
    response = refresh(client, alice_tokens["refresh_token"])
    assert response.status_code == 200
    parent, child = sorted(
        family_rows(in_db, alice_tokens["refresh_token"]), key=lambda row: row.created_at
    )
    assert parent.replaced_by == child.jti == claims(response.json["refresh_token"])["jti"]
    assert parent.spent_at == child.created_at
    assert (child.family_id, child.user_id, child.expires_at) == (
        parent.family_id,
        parent.user_id,
        parent.expires_at,
    )
    assert (child.spent_at, child.revoked_at, child.replaced_by) == (None, None, None)


def test_a_refresh_that_found_sqlite_locked_is_retried(client, alice_tokens, monkeypatch):
    """SQLite serialises writers: a spend that waited past the busy timeout runs again."""
    spend, calls = tokens_module._spend, []

    def locked_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("UPDATE refresh_tokens", {}, Exception("database is locked"))
        return spend(*args)

    monkeypatch.setattr(tokens_module, "_spend", locked_once)
    monkeypatch.setattr(tokens_module.time, "sleep", lambda seconds: None)
    response = refresh(client, alice_tokens["refresh_token"])
    assert response.status_code == 200
    assert len(calls) == 2


def documented_claims() -> dict[str, set[str]]:
    """The claims docs/tokens-and-sessions.md lists, by token type ("both" in each)."""
    page = (ROOT / "docs" / "tokens-and-sessions.md").read_text(encoding="utf-8")
    table = page.split("### Claims", 1)[1].split("\n\n")[1]
    listed = {"access": set(), "refresh": set()}
    for row in table.splitlines()[2:]:
        names, where = row.split("|")[1:3]
        kinds = ["access", "refresh"] if where.strip() == "both" else [where.strip()]
        for kind in kinds:
            listed[kind].update(name.strip(" `") for name in names.split(","))
    return listed


def test_the_docs_list_exactly_the_claims_tokens_carry(client, alice_tokens):
    listed = documented_claims()
    assert set(claims(alice_tokens["access_token"])) == listed["access"]
    assert set(claims(alice_tokens["refresh_token"])) == listed["refresh"]
    access = claims(alice_tokens["access_token"])
    assert (access["aal"], access["amr"]) == ("aal1", ["pwd"])
    assert access["iat"] - 1 <= access["auth_time"] <= access["iat"]  # the login
    # The refresh token's csrf is what the X-CSRF-TOKEN header must carry.
    assert claims(alice_tokens["refresh_token"])["csrf"] == alice_tokens["csrf_token"]
