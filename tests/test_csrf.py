"""CSRF for the refresh cookie as a browser app sees it: the value in login and refresh
answers, GET /auth/csrf after a reload, one value per session, JSON-only bodies, and two
tabs refreshing with the same cookie at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time

from helpers import (
    LOGIN_TIME,
    PASSWORD,
    assert_error,
    bearer,
    claims,
    csrf_header,
    login,
    set_cookies,
)

COOKIE = "refresh_token_cookie"


def cookie_refresh(client, csrf: str | None = None):
    headers = csrf_header(client) if csrf is None else {"X-CSRF-TOKEN": csrf}
    return client.post("/auth/refresh", headers=headers)


# --- csrf_token in the JSON answers ----------------------------------------------------


def test_login_returns_the_csrf_value_of_its_cookie(auth):
    auth.signup()
    response = auth.login()

    cookie = set_cookies(response)["csrf_refresh_token"]["value"]
    assert response.json["csrf_token"] == cookie == claims(response.json["refresh_token"])["csrf"]


def test_cookie_refresh_returns_the_csrf_value(client, alice_tokens):
    response = cookie_refresh(client)

    assert response.status_code == 200
    assert "refresh_token" not in response.json
    assert response.json["csrf_token"] == set_cookies(response)["csrf_refresh_token"]["value"]
    assert (
        response.json["csrf_token"] == claims(client.get_cookie(COOKIE, path="/auth").value)["csrf"]
    )


def test_body_refresh_sets_no_cookie_and_returns_no_csrf_value(client, alice_tokens):
    response = client.post("/auth/refresh", json={"refresh_token": alice_tokens["refresh_token"]})

    assert response.status_code == 200
    assert "csrf_token" not in response.json
    assert set_cookies(response) == {}


def test_no_csrf_value_without_the_cookie(app, auth, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_REFRESH_TRANSPORT", "body")
    auth.signup()

    assert "csrf_token" not in auth.login().json


def test_change_password_returns_the_csrf_value_of_its_new_cookie(client, alice_tokens):
    response = client.put(
        "/auth/change-password",
        headers=bearer(alice_tokens["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a completely new passphrase"},
    )

    assert response.status_code == 200
    assert response.json["csrf_token"] == set_cookies(response)["csrf_refresh_token"]["value"]


def test_the_csrf_value_is_one_per_session(client, auth, alice_tokens):
    # A rotation in one tab must not leave the other tabs with a stale value.
    first = alice_tokens["csrf_token"]
    second = cookie_refresh(client).json["csrf_token"]
    third = cookie_refresh(client, csrf=first).json["csrf_token"]

    assert first == second == third
    other_session = login(client.application.test_client()).json["csrf_token"]
    assert other_session != first


# --- GET /auth/csrf --------------------------------------------------------------------


def test_csrf_endpoint_returns_the_value_of_the_current_cookie(client, alice_tokens):
    response = client.get("/auth/csrf")

    assert response.status_code == 200
    assert response.json == {"csrf_token": alice_tokens["csrf_token"]}
    assert response.headers["Cache-Control"] == "no-store"
    # It is what the next cookie refresh needs.
    assert cookie_refresh(client, csrf=response.json["csrf_token"]).status_code == 200


def test_csrf_endpoint_needs_a_refresh_cookie(client, alice_headers):
    # It said "A bearer token is required", though a bearer token is never read here.
    client.delete_cookie("refresh_token_cookie", path="/auth")
    for headers in ({}, alice_headers):
        body = assert_error(
            client.get("/auth/csrf", headers=headers), 401, "refresh_token_required"
        )
        assert body["message"] == (
            "A refresh token is required: the refresh cookie (refresh_token_cookie) is "
            "missing; log in first."
        )


def test_csrf_endpoint_refuses_a_revoked_cookie(client, alice_tokens):
    client.post("/auth/logout-all", headers=bearer(alice_tokens["access_token"]))
    client.set_cookie(COOKIE, alice_tokens["refresh_token"], path="/auth")

    assert_error(client.get("/auth/csrf"), 401, "token_revoked")


def test_csrf_endpoint_after_logout_is_401(client, alice_tokens):
    client.post("/auth/logout", headers=bearer(alice_tokens["access_token"]) | csrf_header(client))

    assert client.get_cookie(COOKIE, path="/auth") is None
    assert_error(client.get("/auth/csrf"), 401)


@pytest.mark.parametrize("token", ["access", "garbage"])
def test_csrf_endpoint_refuses_anything_but_a_refresh_token(client, alice_tokens, token):
    value = alice_tokens["access_token"] if token == "access" else "not.a.jwt"
    client.set_cookie(COOKIE, value, path="/auth")

    assert_error(client.get("/auth/csrf"), 401)


def test_csrf_endpoint_refuses_an_expired_cookie(client, auth):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        auth.login()
        frozen.move_to(LOGIN_TIME + timedelta(days=8))
        assert_error(client.get("/auth/csrf"), 401, "token_expired")


def test_csrf_endpoint_ignores_an_authorization_header(client, alice_tokens):
    # Only the cookie counts: an access token is not a way to read the CSRF value.
    other = client.application.test_client()

    response = other.get("/auth/csrf", headers=bearer(alice_tokens["access_token"]))

    assert_error(response, 401)


# --- JSON only --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout", "/auth/login"])
def test_cookie_endpoints_never_accept_form_or_text_bodies(
    client, alice_tokens, path, content_type
):
    # What a cross-site <form> can send: refused before anything else is looked at.
    response = client.post(
        path,
        data='{"refresh_token": "x"}',
        content_type=content_type,
        headers=csrf_header(client) | bearer(alice_tokens["access_token"]),
    )

    assert_error(response, 415, "unsupported_media_type")
    assert cookie_refresh(client).status_code == 200  # the session is untouched


# --- two tabs ----------------------------------------------------------------------------


def test_two_tabs_refreshing_with_the_same_cookie_get_the_same_new_one(client, alice_tokens):
    # Tab A's refresh lands first; tab B sent the same (now spent) cookie a moment later.
    spent = client.get_cookie(COOKIE, path="/auth").value
    first = cookie_refresh(client)
    client.set_cookie(COOKIE, spent, path="/auth")
    second = cookie_refresh(client, csrf=alice_tokens["csrf_token"])

    assert first.status_code == second.status_code == 200
    assert set_cookies(first)[COOKIE]["value"] == set_cookies(second)[COOKIE]["value"] != spent
    assert first.json["csrf_token"] == second.json["csrf_token"] == alice_tokens["csrf_token"]
    assert client.get("/auth/me", headers=bearer(second.json["access_token"])).status_code == 200
