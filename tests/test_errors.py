"""One JSON error shape everywhere; hostile input and a dead database never give a 500."""

from __future__ import annotations

import json

import pytest

import auth_service
from auth_service import create_app
from config import TestingConfig
from helpers import PASSWORD, assert_error

MAX_BODY = 64 * 1024


# --- each status in the shared shape --------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/no/such/path"),
        ("POST", "/auth/nope"),
        ("GET", "/users/1/activate/extra"),
    ],
)
def test_unknown_path_is_json_404(client, method, path):
    response = client.open(path, method=method)
    assert_error(response, 404, "not_found")
    assert b"<html" not in response.get_data().lower()


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("GET", "/auth/login", "POST"),
        ("DELETE", "/auth/signup", "POST"),
        ("POST", "/auth/me", "GET"),
        ("PUT", "/users/me", "PATCH"),
        ("GET", "/users/1/activate", "PUT"),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405, "method_not_allowed")
    assert allowed in {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize(
    "path, kwargs",
    [
        ("/auth/login", {"data": {"email": "a@example.com", "password": "x"}}),
        ("/auth/login", {"data": '{"email": "a@example.com"}', "content_type": "text/plain"}),
        ("/auth/login", {}),
        (
            "/auth/signup",
            {
                "data": json.dumps(
                    {"email": "a@example.com", "username": "abc", "password": PASSWORD}
                )
            },
        ),
        ("/auth/signup", {"data": "<user/>", "content_type": "application/xml"}),
    ],
    ids=["login-form", "login-text-plain", "login-no-body", "signup-no-content-type", "signup-xml"],
)
def test_non_json_body_is_415(client, path, kwargs):
    assert_error(client.post(path, **kwargs), 415, "unsupported_media_type")


@pytest.mark.parametrize("raw", ['{"email": ', "{'email': 'a'}", '{"a": 1,}', "nope"])
def test_malformed_json_is_400_with_errors(client, raw):
    response = client.post("/auth/login", data=raw, content_type="application/json")
    body = assert_error(response, 400, "bad_request")
    assert body["errors"] == {"json": ["Invalid JSON body."]}


def test_body_over_the_limit_is_413(app, client):
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_BODY
    raw = json.dumps({"email": "a@example.com", "password": "x" * MAX_BODY})
    response = client.post("/auth/login", data=raw, content_type="application/json")
    assert_error(response, 413, "payload_too_large")


def test_body_at_the_limit_is_read(client):
    skeleton = json.dumps({"email": "a@example.com", "password": ""})
    raw = json.dumps({"email": "a@example.com", "password": "x" * (MAX_BODY - len(skeleton))})
    assert len(raw.encode()) == MAX_BODY
    response = client.post("/auth/login", data=raw, content_type="application/json")
    body = assert_error(response, 422, "validation_error")
    assert list(body["errors"]["json"]) == ["password"]


def test_validation_error_is_422_with_field_messages(client):
    response = client.post(
        "/auth/signup", json={"email": "nope", "username": "a", "password": "short"}
    )
    body = assert_error(response, 422, "validation_error")
    assert set(body["errors"]["json"]) == {"email", "username", "password"}


def test_missing_token_is_401_with_challenge(client):
    response = client.get("/auth/me")
    assert_error(response, 401, "authorization_required")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="auth_service"'


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("PATCH", "/users/me", {"json": {"email": "x"}}),
        ("PATCH", "/users/me", {}),
        ("DELETE", "/users/me", {"json": {"unknown": 1}}),
        ("PUT", "/auth/change-password", {"json": {}}),
        ("PUT", "/auth/change-password", {}),
        ("POST", "/auth/logout", {"json": {"unknown": 1}}),
        ("GET", "/users/?page=abc", {}),
    ],
)
def test_missing_token_is_checked_before_the_body(client, method, path, kwargs):
    # An anonymous caller learns nothing about a protected endpoint's input rules.
    response = client.open(path, method=method, **kwargs)
    assert_error(response, 401, "authorization_required")


def test_superuser_check_comes_before_the_query(client, alice_headers):
    assert_error(client.get("/users/?page=abc", headers=alice_headers), 403, "forbidden")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not.a.jwt",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a.b.c.d",
        "Bearer " + "x" * 4000,
    ],
)
def test_bad_token_is_401_with_challenge(client, authorization):
    response = client.get("/auth/me", headers={"Authorization": authorization})
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="auth_service"')


# --- hostile input --------------------------------------------------------------------

# (method, path, needs a bearer token, JSON fields the endpoint reads)
ENDPOINTS = [
    ("POST", "/auth/signup", False, ["email", "username", "password", "full_name"]),
    ("POST", "/auth/login", False, ["email", "password"]),
    ("POST", "/auth/refresh", False, ["refresh_token"]),
    ("POST", "/auth/logout", True, ["refresh_token"]),
    ("PUT", "/auth/change-password", True, ["current_password", "new_password"]),
    ("PATCH", "/users/me", True, ["username", "full_name"]),
    ("DELETE", "/users/me", True, ["password"]),
]


def _fields(fields, make):
    return json.dumps({name: make(name, len(fields)) for name in fields}).encode()


HOSTILE_BODIES = {
    "nul-bytes": lambda f: _fields(f, lambda name, n: f"x\x00{name}@example.com"),
    "long-strings": lambda f: _fields(f, lambda name, n: "x" * (60_000 // n)),
    "over-limit-string": lambda f: _fields(f, lambda name, n: "x" * 100_000),
    "huge-integers": lambda f: _fields(f, lambda name, n: 10**4000),
    "wrong-types": lambda f: _fields(f, lambda name, n: {"$gt": ""}),
    "deep-arrays": lambda f: b"[" * 50_000,
    "deep-objects": lambda f: b'{"a":' * 20_000,
    "deep-valid-arrays": lambda f: b"[" * 30_000 + b"]" * 30_000,
    "integer-5000-digits": lambda f: b'{"%s": 1%s}' % (f[0].encode(), b"0" * 5000),
    "float-overflow": lambda f: b'{"%s": 1e999999}' % f[0].encode(),
    "invalid-utf8": lambda f: b'{"%s": "\xff\xfe"}' % f[0].encode(),
    "lone-surrogate": lambda f: json.dumps({name: "ab\ud800cd" for name in f}).encode(),
    "top-level-list": lambda f: b"[]",
    "top-level-number": lambda f: b"1",
    "top-level-string": lambda f: b'"x"',
    "top-level-null": lambda f: b"null",
    "empty-object": lambda f: b"{}",
    "bom": lambda f: b"\xef\xbb\xbf{}",
}


@pytest.mark.parametrize("payload", list(HOSTILE_BODIES))
@pytest.mark.parametrize(
    "method, path, needs_token, fields", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_hostile_bodies_never_500(client, auth, method, path, needs_token, fields, payload):
    headers = auth.bearer(auth.signup_and_login()["access_token"]) if needs_token else {}
    raw = HOSTILE_BODIES[payload](fields)
    response = client.open(
        path, method=method, data=raw, headers=headers, content_type="application/json"
    )
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert_error(response, response.status_code)


@pytest.mark.parametrize(
    "path",
    [
        "/users/abc/activate",
        "/users/-1/activate",
        "/users/1.5/deactivate",
        "/users/%00/activate",
        "/users/99999999999999999999/deactivate",
        "/users/0x10/activate",
        "/users/%F0%9F%92%A5/activate",
    ],
)
def test_bad_user_ids_are_404(client, superuser_headers, path):
    assert_error(client.put(path, headers=superuser_headers), 404)


@pytest.mark.parametrize("session_id", ["%00", "abc%00def", "x" * 2000, "%FF", "..", "%2e%2e"])
def test_bad_session_ids_are_404(client, alice_headers, session_id):
    response = client.delete(f"/auth/active-sessions/{session_id}", headers=alice_headers)
    assert_error(response, 404)


@pytest.mark.parametrize(
    "query",
    [
        "page=99999999999999999999",
        "per_page=1e3",
        "q=%00",
        "q=" + "x" * 5000,
        "page=1&page=2",
        "q=%FF%FE",
    ],
)
def test_hostile_query_strings_never_500(client, superuser_headers, query):
    response = client.get(f"/users/?{query}", headers=superuser_headers)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert_error(response, response.status_code)


@pytest.mark.parametrize("user_agent", ["agent\x00with nul", "é" * 1000, "x" * 10_000])
def test_hostile_user_agent_at_login_never_500(client, auth, user_agent):
    auth.signup()
    response = client.post(
        "/auth/login",
        json={"email": "alice@example.com", "password": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200


# --- database outage ------------------------------------------------------------------


class UnreachableDatabaseConfig(TestingConfig):
    """Port 1 on localhost refuses connections at once."""

    DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:1/none"


@pytest.fixture(scope="module")
def down_client():
    """A second app whose database refuses every connection."""
    return create_app(UnreachableDatabaseConfig).test_client()


def test_healthz_needs_no_database(down_client):
    response = down_client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "version": auth_service.__version__}


def test_readyz_reports_the_database_down(down_client):
    assert_error(down_client.get("/readyz"), 503, "database_unavailable")


def test_readyz_ok_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_login_with_the_database_down_is_503(down_client):
    response = down_client.post(
        "/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
    )
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "5"


def test_access_token_check_fails_closed_with_the_database_down(auth, down_client):
    # Same TestingConfig secret: the signature is valid, only the user lookup fails.
    tokens = auth.signup_and_login()
    response = down_client.get("/auth/me", headers=auth.bearer(tokens["access_token"]))
    assert_error(response, 503, "database_unavailable")


def test_refresh_revocation_check_fails_closed_with_the_database_down(auth, down_client):
    tokens = auth.signup_and_login()
    response = down_client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(response, 503, "database_unavailable")


def test_session_app_still_works_after_a_second_app(down_client, client, auth):
    """create_app twice must not break the session app (module-level extensions)."""
    tokens = auth.signup_and_login()
    assert client.get("/auth/me", headers=auth.bearer(tokens["access_token"])).status_code == 200
    assert "/auth/login" in client.get("/openapi.json").json["paths"]
