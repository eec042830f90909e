"""Sessions: logout, logout-all, password change, deactivation and deletion,
the active-sessions list, and the refresh cookie with its CSRF header."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from auth_service.extensions import db
from auth_service.persistence.models import RefreshToken, Session, utcnow
from helpers import (
    LOGIN_TIME,
    PASSWORD,
    bearer,
    claims,
    csrf_header,
    family_rows,
    me,
    refresh,
    row_count,
    set_cookies,
    token_rows,
)

OLD_PASSWORD = PASSWORD  # Alice's password until a test changes it
NEW_PASSWORD = "tr0ub4dor & 3 staples"
SESSION_FIELDS = {
    "id",
    "created_at",
    "last_used_at",
    "expires_at",
    "user_agent",
    "ip_address",
    "current",
}


def is_cleared(cookie: dict) -> bool:
    """An empty cookie the browser must drop at once (``cookie`` from set_cookies)."""
    return cookie["value"] == "" and (
        cookie.get("max-age") == "0" or cookie.get("expires", "").startswith("Thu, 01 Jan 1970")
    )


def user_rows(in_db, token: str) -> list[RefreshToken]:
    """Every refresh_tokens row of the user ``token`` belongs to."""
    return token_rows(in_db, int(claims(token)["sub"]))


def revoked_reasons(rows: list[RefreshToken]) -> set[str | None]:
    """The rows' revoked_reason values."""
    return {row.revoked_reason for row in rows}


@pytest.fixture
def bob(app):
    """Bob, logged in through his own client (his own cookie jar)."""
    client = app.test_client()
    client.post(
        "/auth/signup",
        json={"email": "bob@example.com", "username": "bob", "password": OLD_PASSWORD},
    )
    return client.post(
        "/auth/login", json={"email": "bob@example.com", "password": OLD_PASSWORD}
    ).json


# --- logout --------------------------------------------------------------------------


def test_logout_with_refresh_token_in_body_revokes_the_session(client, alice_tokens, in_db):
    child = refresh(client, alice_tokens["refresh_token"]).json["refresh_token"]

    response = client.post(
        "/auth/logout", headers=bearer(alice_tokens["access_token"]), json={"refresh_token": child}
    )

    assert response.status_code == 200
    rows = family_rows(in_db, child)
    assert len(rows) == 2
    assert all(row.revoked_at is not None for row in rows)
    assert revoked_reasons(rows) == {"logout"}
    assert refresh(client, child).status_code == 401


def test_logout_with_cookie_and_csrf_header_revokes_the_session(client, alice_tokens, in_db):
    response = client.post(
        "/auth/logout", headers=bearer(alice_tokens["access_token"]) | csrf_header(client)
    )

    assert response.status_code == 200
    assert revoked_reasons(family_rows(in_db, alice_tokens["refresh_token"])) == {"logout"}
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401


def test_logout_clears_the_cookies(client, alice_tokens):
    response = client.post(
        "/auth/logout", headers=bearer(alice_tokens["access_token"]) | csrf_header(client)
    )

    cookies = set_cookies(response)
    assert is_cleared(cookies["refresh_token_cookie"])
    assert cookies["refresh_token_cookie"]["path"] == "/auth"
    assert is_cleared(cookies["csrf_refresh_token"])
    assert client.get_cookie("refresh_token_cookie", path="/auth") is None
    assert client.get_cookie("csrf_refresh_token") is None


@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_logout_with_cookie_needs_matching_csrf_header(client, alice_tokens, in_db, csrf):
    headers = bearer(alice_tokens["access_token"]) | ({"X-CSRF-TOKEN": csrf} if csrf else {})

    response = client.post("/auth/logout", headers=headers)

    assert response.status_code == 403
    assert response.json["error"] == "csrf_failed"
    assert revoked_reasons(family_rows(in_db, alice_tokens["refresh_token"])) == {None}


def test_logout_with_someone_elses_refresh_token_is_refused(app, alice_tokens, bob, in_db):
    client = app.test_client()

    response = client.post(
        "/auth/logout",
        headers=bearer(alice_tokens["access_token"]),
        json={"refresh_token": bob["refresh_token"]},
    )

    assert response.status_code == 401
    assert revoked_reasons(family_rows(in_db, bob["refresh_token"])) == {None}
    assert revoked_reasons(family_rows(in_db, alice_tokens["refresh_token"])) == {None}
    assert refresh(client, bob["refresh_token"]).status_code == 200


def test_logout_without_refresh_token_ends_the_access_tokens_session(
    app, auth, alice_tokens, in_db
):
    other = auth.login(password=OLD_PASSWORD).json
    api_client = app.test_client()  # no cookies: an API client

    response = api_client.post("/auth/logout", headers=bearer(alice_tokens["access_token"]))

    assert response.status_code == 200
    assert revoked_reasons(family_rows(in_db, alice_tokens["access_token"])) == {"logout"}
    assert revoked_reasons(family_rows(in_db, other["access_token"])) == {None}
    assert refresh(api_client, alice_tokens["refresh_token"]).status_code == 401
    assert refresh(api_client, other["refresh_token"]).status_code == 200


def test_logout_ends_the_sessions_access_tokens_at_once(client, auth, alice_tokens):
    other = auth.login(password=OLD_PASSWORD).json
    client.post(
        "/auth/logout",
        headers=bearer(alice_tokens["access_token"]),
        json={"refresh_token": alice_tokens["refresh_token"]},
    )

    response = me(client, alice_tokens["access_token"])

    assert response.status_code == 401
    assert response.json["error"] == "token_revoked"
    assert me(client, other["access_token"]).status_code == 200


def test_an_expired_sessions_access_token_is_refused(client, alice_tokens, in_db):
    """A token issued at the last rotation dies with its session's absolute expiry."""
    sid = claims(alice_tokens["access_token"])["sid"]

    def expire():
        db.session.execute(
            sa.update(Session)
            .where(Session.id == sid)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

    in_db(expire)
    response = me(client, alice_tokens["access_token"])

    assert response.status_code == 401
    assert response.json["error"] == "token_revoked"


def test_the_session_row_records_the_logout(client, alice_tokens, in_db):
    client.post(
        "/auth/logout",
        headers=bearer(alice_tokens["access_token"]),
        json={"refresh_token": alice_tokens["refresh_token"]},
    )

    session = in_db(lambda: db.session.get(Session, claims(alice_tokens["access_token"])["sid"]))
    assert session.revoked_at is not None
    assert session.revoked_reason == "logout"


# --- logout-all ----------------------------------------------------------------------


def test_logout_all_revokes_every_session_of_the_user(client, auth, alice_tokens, in_db):
    other = auth.login(password=OLD_PASSWORD).json

    response = client.post("/auth/logout-all", headers=bearer(alice_tokens["access_token"]))

    assert response.status_code == 200
    rows = user_rows(in_db, alice_tokens["access_token"])
    assert len(rows) == 2
    assert revoked_reasons(rows) == {"logout_all"}
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401
    assert refresh(client, other["refresh_token"]).status_code == 401
    assert is_cleared(set_cookies(response)["refresh_token_cookie"])


def test_logout_all_ends_every_access_token_at_once(client, auth, alice_tokens):
    other = auth.login(password=OLD_PASSWORD).json

    client.post("/auth/logout-all", headers=bearer(alice_tokens["access_token"]))

    for access_token in (alice_tokens["access_token"], other["access_token"]):
        response = me(client, access_token)
        assert response.status_code == 401
        assert response.json["error"] == "token_revoked"


def test_logout_all_leaves_other_users_alone(client, alice_tokens, bob, in_db):
    client.post("/auth/logout-all", headers=bearer(alice_tokens["access_token"]))

    assert revoked_reasons(user_rows(in_db, bob["refresh_token"])) == {None}
    assert refresh(client, bob["refresh_token"]).status_code == 200


# --- change-password -----------------------------------------------------------------


def change_password(client, access_token, current=OLD_PASSWORD, new=NEW_PASSWORD):
    return client.put(
        "/auth/change-password",
        headers=bearer(access_token),
        json={"current_password": current, "new_password": new},
    )


def test_change_password_with_wrong_current_password(client, alice_tokens):
    response = change_password(client, alice_tokens["access_token"], current="not my password")

    assert response.status_code == 400
    assert response.json["error"] == "invalid_password"
    assert me(client, alice_tokens["access_token"]).status_code == 200
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 200


def test_change_password_enforces_the_policy(client, auth, alice_tokens):
    response = change_password(client, alice_tokens["access_token"], new="7 chars")

    assert response.status_code == 422
    assert "new_password" in response.json["errors"]["json"]
    assert auth.login(password=OLD_PASSWORD).status_code == 200


def test_change_password_returns_a_working_pair(client, alice_tokens):
    response = change_password(client, alice_tokens["access_token"])

    assert response.status_code == 200
    assert set_cookies(response)["refresh_token_cookie"]["value"] == response.json["refresh_token"]
    assert me(client, response.json["access_token"]).status_code == 200
    assert refresh(client, response.json["refresh_token"]).status_code == 200


def test_change_password_refuses_older_tokens_at_once(client, auth, in_db):
    auth.signup(password=OLD_PASSWORD)
    with freeze_time(LOGIN_TIME):  # one second: only the token version tells the tokens apart
        alice = auth.login(password=OLD_PASSWORD).json
        other = auth.login(password=OLD_PASSWORD).json
        new = change_password(client, alice["access_token"]).json

        old_access = me(client, alice["access_token"])
        old_refreshes = [refresh(client, t["refresh_token"]) for t in (alice, other)]

    assert claims(new["access_token"])["iat"] == claims(alice["access_token"])["iat"]
    assert old_access.status_code == 401
    assert [r.status_code for r in old_refreshes] == [401, 401]
    assert revoked_reasons(family_rows(in_db, alice["refresh_token"])) == {"password_changed"}
    assert revoked_reasons(family_rows(in_db, other["refresh_token"])) == {"password_changed"}
    assert revoked_reasons(family_rows(in_db, new["refresh_token"])) == {None}


@pytest.mark.parametrize(("password", "status"), [(OLD_PASSWORD, 401), (NEW_PASSWORD, 200)])
def test_login_after_password_change(client, auth, alice_tokens, password, status):
    change_password(client, alice_tokens["access_token"])

    assert auth.login(password=password).status_code == status


# --- deactivation and deletion -------------------------------------------------------


def set_active(client, admin_headers, user_token, active: bool):
    """(De)activate the user of ``user_token`` with a superuser's headers."""
    user_id = claims(user_token)["sub"]
    action = "activate" if active else "deactivate"
    return client.put(f"/users/{user_id}/{action}", headers=admin_headers)


def test_deactivation_ends_every_session_at_once(client, alice_tokens, superuser_headers, in_db):
    response = set_active(client, superuser_headers, alice_tokens["access_token"], active=False)

    assert response.status_code == 200
    assert response.json["is_active"] is False
    assert me(client, alice_tokens["access_token"]).status_code == 401
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401
    assert revoked_reasons(user_rows(in_db, alice_tokens["access_token"])) == {"deactivated"}


def test_deactivated_user_cannot_log_in(client, auth, alice_tokens, superuser_headers):
    set_active(client, superuser_headers, alice_tokens["access_token"], active=False)

    response = auth.login(password=OLD_PASSWORD)

    assert response.status_code == 401
    assert response.json["error"] == "invalid_credentials"


def test_tokens_from_before_a_deactivation_stay_dead_after_reactivation(
    client, alice_tokens, superuser_headers
):
    set_active(client, superuser_headers, alice_tokens["access_token"], active=False)
    set_active(client, superuser_headers, alice_tokens["access_token"], active=True)

    assert me(client, alice_tokens["access_token"]).status_code == 401
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401


def test_reactivated_user_can_log_in_again(client, auth, alice_tokens, superuser_headers):
    set_active(client, superuser_headers, alice_tokens["access_token"], active=False)

    response = set_active(client, superuser_headers, alice_tokens["access_token"], active=True)

    assert response.status_code == 200
    login = auth.login(password=OLD_PASSWORD)
    assert login.status_code == 200
    assert me(client, login.json["access_token"]).status_code == 200


def test_deleting_the_account_ends_every_session(client, auth, alice_tokens, in_db):
    other = auth.login(password=OLD_PASSWORD).json

    response = client.delete(
        "/users/me", headers=bearer(alice_tokens["access_token"]), json={"password": OLD_PASSWORD}
    )

    assert response.status_code == 204
    assert me(client, alice_tokens["access_token"]).status_code == 401
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401
    assert refresh(client, other["refresh_token"]).status_code == 401
    assert row_count(in_db, RefreshToken) == 0


def test_deleted_accounts_token_does_not_open_the_next_account(client, auth, alice_tokens):
    # SQLite hands the deleted account's id to the next signup.
    client.delete(
        "/users/me", headers=bearer(alice_tokens["access_token"]), json={"password": OLD_PASSWORD}
    )
    auth.signup("carol@example.com", "carol", OLD_PASSWORD)

    response = me(client, alice_tokens["access_token"])

    assert response.status_code == 401


# --- active sessions -----------------------------------------------------------------


def active_sessions(client, access_token):
    return client.get("/auth/active-sessions", headers=bearer(access_token))


def test_active_sessions_lists_each_live_session(app, auth, in_db):
    auth.signup(password=OLD_PASSWORD)
    laptop = (
        app.test_client()
        .post(
            "/auth/login",
            headers={"User-Agent": "laptop"},
            json={"email": "alice@example.com", "password": OLD_PASSWORD},
        )
        .json
    )
    phone = (
        app.test_client()
        .post(
            "/auth/login",
            headers={"User-Agent": "phone"},
            json={"email": "alice@example.com", "password": OLD_PASSWORD},
        )
        .json
    )

    response = active_sessions(auth.client, laptop["access_token"])

    assert response.status_code == 200
    sessions = {s["id"]: s for s in response.json}
    assert set(sessions) == {
        claims(laptop["access_token"])["sid"],
        claims(phone["access_token"])["sid"],
    }
    assert all(set(s) == SESSION_FIELDS for s in sessions.values())
    laptop_session = sessions[claims(laptop["access_token"])["sid"]]
    assert laptop_session["user_agent"] == "laptop"
    assert laptop_session["ip_address"] == "127.0.0.1"
    assert [s["id"] for s in response.json if s["current"]] == [laptop_session["id"]]


def test_active_sessions_hides_ended_sessions(client, auth, alice_tokens):
    ended = auth.login(password=OLD_PASSWORD).json
    client.post(
        "/auth/logout",
        headers=bearer(ended["access_token"]),
        json={"refresh_token": ended["refresh_token"]},
    )

    response = active_sessions(client, alice_tokens["access_token"])

    assert [s["id"] for s in response.json] == [claims(alice_tokens["access_token"])["sid"]]


def test_active_sessions_hides_expired_sessions(client, auth):
    auth.signup(password=OLD_PASSWORD)
    with freeze_time(LOGIN_TIME) as frozen:
        auth.login(password=OLD_PASSWORD)
        frozen.move_to(LOGIN_TIME + timedelta(days=7, seconds=1))
        current = auth.login(password=OLD_PASSWORD).json

        response = active_sessions(client, current["access_token"])

    assert [s["id"] for s in response.json] == [claims(current["access_token"])["sid"]]


def test_active_session_keeps_its_login_time_across_rotation(client, auth):
    auth.signup(password=OLD_PASSWORD)
    with freeze_time(LOGIN_TIME) as frozen:
        login = auth.login(password=OLD_PASSWORD).json
        frozen.tick(timedelta(hours=1))
        rotated = refresh(client, login["refresh_token"]).json

        response = active_sessions(client, rotated["access_token"])

    [session] = response.json
    assert datetime.fromisoformat(session["created_at"]) == LOGIN_TIME
    assert datetime.fromisoformat(session["last_used_at"]) == LOGIN_TIME + timedelta(hours=1)
    assert datetime.fromisoformat(session["expires_at"]) == LOGIN_TIME + timedelta(days=7)
    assert session["current"] is True


def test_revoking_a_session(client, auth, alice_tokens, in_db):
    other = auth.login(password=OLD_PASSWORD).json
    other_sid = claims(other["access_token"])["sid"]

    response = client.delete(
        f"/auth/active-sessions/{other_sid}", headers=bearer(alice_tokens["access_token"])
    )

    assert response.status_code == 204
    assert refresh(client, other["refresh_token"]).status_code == 401
    assert me(client, other["access_token"]).status_code == 401
    assert me(client, alice_tokens["access_token"]).status_code == 200
    assert revoked_reasons(family_rows(in_db, other["refresh_token"])) == {"session_revoked"}
    assert [s["id"] for s in active_sessions(client, alice_tokens["access_token"]).json] == [
        claims(alice_tokens["access_token"])["sid"]
    ]


@pytest.mark.parametrize("whose", ["bob", "unknown"])
def test_revoking_someone_elses_or_an_unknown_session_is_a_404(
    client, alice_tokens, bob, in_db, whose
):
    session_id = {
        "bob": claims(bob["access_token"])["sid"],
        "unknown": "00000000-0000-0000-0000-000000000000",
    }[whose]

    response = client.delete(
        f"/auth/active-sessions/{session_id}", headers=bearer(alice_tokens["access_token"])
    )

    assert response.status_code == 404
    assert response.json["error"] == "session_not_found"
    assert revoked_reasons(family_rows(in_db, bob["refresh_token"])) == {None}
    assert refresh(client, bob["refresh_token"]).status_code == 200


def test_revoking_an_ended_session_is_a_404(client, auth, alice_tokens):
    ended = auth.login(password=OLD_PASSWORD).json
    client.post(
        "/auth/logout",
        headers=bearer(ended["access_token"]),
        json={"refresh_token": ended["refresh_token"]},
    )

    response = client.delete(
        f"/auth/active-sessions/{claims(ended['access_token'])['sid']}",
        headers=bearer(alice_tokens["access_token"]),
    )

    assert response.status_code == 404
    assert response.json["error"] == "session_not_found"
