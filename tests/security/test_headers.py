"""Security headers on every response, HSTS over https only, and no CORS for anyone."""

from __future__ import annotations

import pytest

from config import TestingConfig
from helpers import PASSWORD, bearer, claims, csrf_header, login

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=63072000; includeSubDomains"
EVIL_ORIGIN = "https://evil.example"


def _login(client, auth, limits):
    auth.signup()
    return login(client)


def _refresh_body(client, auth, limits):
    tokens = auth.signup_and_login()
    return client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


def _refresh_cookie(client, auth, limits):
    auth.signup_and_login()
    return client.post("/auth/refresh", headers=csrf_header(client))


def _change_password(client, auth, limits):
    tokens = auth.signup_and_login()
    return client.put(
        "/auth/change-password",
        headers=bearer(tokens["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a completely new passphrase"},
    )


def _me(client, auth, limits):
    return client.get("/users/me", headers=bearer(auth.signup_and_login()["access_token"]))


def _signup(client, auth, limits):
    return auth.signup()


def _failed_login(client, auth, limits):
    return login(client, password="wrong password")


def _validation_error(client, auth, limits):
    return client.post("/auth/signup", json={"email": "nope"})


def _not_found(client, auth, limits):
    return client.get("/no/such/path")


def _method_not_allowed(client, auth, limits):
    return client.get("/auth/login")


def _unsupported_media_type(client, auth, limits):
    return client.post("/auth/login", data="email=a", content_type="text/plain")


def _rate_limited(client, auth, limits):
    limits(LOGIN_PER_IP="1 per minute")
    login(client)
    return login(client)


def _healthz(client, auth, limits):
    return client.get("/healthz")


def _openapi(client, auth, limits):
    return client.get("/openapi.json")


JSON_RESPONSES = {
    "login": (_login, 200),
    "refresh-body": (_refresh_body, 200),
    "refresh-cookie": (_refresh_cookie, 200),
    "change-password": (_change_password, 200),
    "users-me": (_me, 200),
    "signup": (_signup, 201),
    "401": (_failed_login, 401),
    "422": (_validation_error, 422),
    "404": (_not_found, 404),
    "405": (_method_not_allowed, 405),
    "415": (_unsupported_media_type, 415),
    "429": (_rate_limited, 429),
    "healthz": (_healthz, 200),
    "openapi.json": (_openapi, 200),
}


@pytest.fixture(params=JSON_RESPONSES.values(), ids=JSON_RESPONSES.keys())
def json_response(request, client, auth, limits):
    """One response of each kind the API gives, made over plain http."""
    make, status = request.param
    response = make(client, auth, limits)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    return response


def test_json_responses_carry_the_security_headers(json_response):
    headers = json_response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == API_CSP
    # Tokens and profiles must never be kept by a browser or a shared cache.
    assert headers["Cache-Control"] == "no-store"


def test_no_hsts_over_plain_http(json_response):
    assert "Strict-Transport-Security" not in json_response.headers


def _revoke_session(client, tokens):
    sid = claims(tokens["access_token"])["sid"]
    return client.delete(f"/auth/active-sessions/{sid}", headers=bearer(tokens["access_token"]))


def _delete_account(client, tokens):
    return client.delete(
        "/users/me", json={"password": PASSWORD}, headers=bearer(tokens["access_token"])
    )


@pytest.mark.parametrize("make", [_revoke_session, _delete_account])
def test_a_204_has_no_content_type_and_no_body(client, alice_tokens, make):
    response = make(client, alice_tokens)

    assert response.status_code == 204
    assert "Content-Type" not in response.headers  # was application/json
    assert "Content-Length" not in response.headers
    assert response.data == b""
    # Still an API answer: never cached.
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == API_CSP


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_html_docs_pages_carry_the_basic_headers(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/healthz"), ("POST", "/auth/login"), ("GET", "/no/such/path")]
)
def test_hsts_over_https(client, method, path):
    response = client.open(
        path,
        method=method,
        base_url="https://localhost",
        json={"email": "a@example.com", "password": "x"} if method == "POST" else None,
    )

    assert response.headers["Strict-Transport-Security"] == HSTS


def test_forged_forwarded_proto_does_not_turn_on_hsts(client):
    # TRUSTED_PROXIES=0: a client cannot claim the request came in over https.
    response = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})

    assert "Strict-Transport-Security" not in response.headers


# --- CORS -----------------------------------------------------------------------------


def _assert_no_cors(response) -> None:
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers
    assert EVIL_ORIGIN not in str(response.headers)


@pytest.mark.parametrize(
    ("method", "path", "authorized"),
    [
        ("POST", "/auth/login", False),
        ("POST", "/auth/refresh", False),
        ("GET", "/auth/me", True),
        ("GET", "/auth/me", False),
        ("GET", "/users/me", True),
        ("GET", "/openapi.json", False),
        ("GET", "/no/such/path", False),
    ],
)
def test_foreign_origin_is_never_allowed(client, auth, method, path, authorized):
    tokens = auth.signup_and_login()
    headers = {"Origin": EVIL_ORIGIN}
    if authorized:
        headers |= bearer(tokens["access_token"])
    body = {"email": "alice@example.com", "password": PASSWORD} if path == "/auth/login" else None

    response = client.open(path, method=method, headers=headers, json=body)

    assert response.status_code < 500
    _assert_no_cors(response)


@pytest.mark.parametrize(
    "path", ["/auth/login", "/auth/refresh", "/auth/me", "/users/me", "/auth/change-password"]
)
def test_preflight_from_a_foreign_origin_is_not_allowed(client, path):
    response = client.options(
        path,
        headers={
            "Origin": EVIL_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-csrf-token",
        },
    )

    assert response.status_code < 500
    _assert_no_cors(response)
    assert "Access-Control-Allow-Methods" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_header_the_view_set_is_kept_and_not_repeated(make_app):
    app = make_app(TestingConfig)
    app.add_url_rule(
        "/own-headers",
        view_func=lambda: (
            {"ok": True},
            200,
            {"Cache-Control": "max-age=60", "x-frame-options": "SAMEORIGIN"},
        ),
    )

    response = app.test_client().get("/own-headers")

    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("Content-Security-Policy") == [API_CSP]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
