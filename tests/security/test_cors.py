"""CORS for CORS_ORIGINS only (exact match, credentials, errors included), preflights,
and cookie-authenticated requests refused from any other Origin."""

from __future__ import annotations

import pytest

from auth_service.security.cors import parse_origins
from config import ConfigError, TestingConfig, load_config
from helpers import PASSWORD, assert_error, bearer, csrf_header, login

APP_ORIGIN = "https://app.example.com"
OTHER_APP = "http://localhost:3000"
EVIL_ORIGIN = "https://evil.example"
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
)


class CorsConfig(TestingConfig):
    CORS_ORIGINS = (APP_ORIGIN, OTHER_APP)


@pytest.fixture
def cors_app(make_app):
    return make_app(CorsConfig)


@pytest.fixture
def browser(cors_app):
    """A browser on the CORS-enabled app (its own cookie jar)."""
    return cors_app.test_client()


def signup_and_login(browser) -> dict:
    browser.post(
        "/auth/signup",
        json={"email": "alice@example.com", "username": "alice", "password": PASSWORD},
    )
    response = login(browser)
    assert response.status_code == 200
    return response.json


def assert_cors_for(response, origin: str) -> None:
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == origin
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.vary


def assert_no_cors(response) -> None:
    for name in CORS_HEADERS:
        assert name not in response.headers
    assert EVIL_ORIGIN not in str(response.headers)


# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        (
            "https://app.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:5173",
            "http://[::1]:8080",
        ),
        (),
    ],
)
def test_plain_origins_are_accepted(entries):
    assert parse_origins(entries) == frozenset(entries)


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "null",
        "https://app.example.com/",
        "https://app.example.com/app",
        "app.example.com",
        "https://App.example.com",
        "https://app.example.com:443",
        "http://app.example.com:80",
        "ftp://app.example.com",
        "https://*.example.com",
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "https://app.example.com:99999",
        "https://",
    ],
)
def test_anything_but_an_exact_origin_is_refused_at_startup(entry):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        parse_origins([entry])


def test_cors_origins_are_read_comma_separated_from_the_environment():
    class FromEnv(TestingConfig):
        READ_ENVIRONMENT = True

    settings = load_config(FromEnv, {"CORS_ORIGINS": "https://a.example, http://localhost:3000"})
    assert settings["CORS_ORIGINS"] == ["https://a.example", "http://localhost:3000"]
    assert load_config(TestingConfig)["CORS_ORIGINS"] == ()


def test_without_cors_origins_nothing_is_added(client):
    response = client.get("/healthz", headers={"Origin": APP_ORIGIN})

    assert_no_cors(response)
    assert "Origin" not in response.vary


# --- actual requests -----------------------------------------------------------------


@pytest.mark.parametrize("origin", [APP_ORIGIN, OTHER_APP])
def test_an_allowed_origin_is_echoed_with_credentials(browser, origin):
    tokens = signup_and_login(browser)

    response = browser.get("/auth/me", headers={"Origin": origin} | bearer(tokens["access_token"]))

    assert response.status_code == 200
    assert_cors_for(response, origin)
    assert response.headers["Access-Control-Allow-Origin"] != "*"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "WWW-Authenticate"} <= exposed


def _expired(browser, limits):
    return browser.get("/auth/me", headers=bearer("not.a.token"))


def _csrf_missing(browser, limits):
    signup_and_login(browser)
    return browser.post("/auth/refresh")


def _text_plain(browser, limits):
    return browser.post("/auth/login", data="{}", content_type="text/plain")


def _rate_limited(browser, limits):
    limits(LOGIN_PER_IP="1 per minute")
    login(browser)
    return login(browser)


def _not_found(browser, limits):
    return browser.get("/no/such/path")


def _validation(browser, limits):
    return browser.post("/auth/signup", json={"email": "nope"})


ERRORS = {
    "401": (_expired, 401),
    "403-csrf": (_csrf_missing, 403),
    "415": (_text_plain, 415),
    "429": (_rate_limited, 429),
    "404": (_not_found, 404),
    "422": (_validation, 422),
}


@pytest.mark.parametrize(("make", "status"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_carry_the_cors_headers_so_the_app_can_read_them(
    cors_app, browser, make, status, monkeypatch
):
    def tighten(**values):
        for name, value in values.items():
            monkeypatch.setitem(cors_app.config, f"RATELIMIT_{name}", value)

    browser.environ_base["HTTP_ORIGIN"] = APP_ORIGIN
    response = make(browser, tighten)

    assert_error(response, status)
    assert_cors_for(response, APP_ORIGIN)
    if status == 429:
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    "origin",
    [
        EVIL_ORIGIN,
        "null",
        "https://app.example.com.evil.example",
        "https://APP.example.com",
        APP_ORIGIN + "/",
        "http://app.example.com",
    ],
)
def test_any_other_origin_gets_no_cors_headers(browser, origin):
    tokens = signup_and_login(browser)

    response = browser.get("/auth/me", headers={"Origin": origin} | bearer(tokens["access_token"]))

    assert response.status_code == 200
    for name in CORS_HEADERS:
        assert name not in response.headers
    assert "Origin" in response.vary


# --- preflight -----------------------------------------------------------------------


def preflight(browser, path, origin, method="POST"):
    return browser.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, x-csrf-token",
        },
    )


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/auth/login", "POST"),
        ("/auth/refresh", "POST"),
        ("/auth/logout", "POST"),
        ("/auth/me", "GET"),
        ("/auth/change-password", "PUT"),
        ("/users/me", "PATCH"),
        ("/auth/active-sessions/abc", "DELETE"),
        ("/auth/csrf", "GET"),
    ],
)
def test_preflight_from_an_allowed_origin(browser, path, method):
    response = preflight(browser, path, APP_ORIGIN, method)

    assert response.status_code == 204
    assert_cors_for(response, APP_ORIGIN)
    assert method in response.headers["Access-Control-Allow-Methods"]
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed == {"authorization", "content-type", "x-csrf-token"}
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # No content, so no type (it was text/html).
    assert "Content-Type" not in response.headers
    assert response.data == b""


def test_preflight_from_another_origin_is_not_allowed(browser):
    response = preflight(browser, "/auth/refresh", EVIL_ORIGIN)

    assert response.status_code < 500
    assert_no_cors(response)


def test_preflights_do_not_count_against_rate_limits(cors_app, browser, monkeypatch):
    monkeypatch.setitem(cors_app.config, "RATELIMIT_LOGIN_PER_IP", "2 per minute")
    browser.post(
        "/auth/signup",
        json={"email": "alice@example.com", "username": "alice", "password": PASSWORD},
    )
    for _ in range(5):
        assert preflight(browser, "/auth/login", APP_ORIGIN).status_code == 204

    assert login(browser).status_code == 200
    assert login(browser).status_code == 200
    assert login(browser).status_code == 429


# --- cookie-authenticated requests from other origins ---------------------------------


def _refresh(browser, tokens, origin):
    return browser.post("/auth/refresh", headers={"Origin": origin} | csrf_header(browser))


def _logout(browser, tokens, origin):
    return browser.post(
        "/auth/logout",
        headers={"Origin": origin} | csrf_header(browser) | bearer(tokens["access_token"]),
    )


def _csrf(browser, tokens, origin):
    return browser.get("/auth/csrf", headers={"Origin": origin})


COOKIE_REQUESTS = {"refresh": _refresh, "logout": _logout, "csrf": _csrf}


@pytest.mark.parametrize("make", COOKIE_REQUESTS.values(), ids=COOKIE_REQUESTS.keys())
@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "null", "http://localhost:3001"])
def test_cookie_requests_from_a_foreign_origin_are_refused(browser, in_db, make, origin):
    tokens = signup_and_login(browser)

    response = make(browser, tokens, origin)

    assert_error(response, 403, "origin_not_allowed")
    assert_no_cors(response)
    # Nothing happened: the session is untouched and the cookie still refreshes.
    assert browser.post("/auth/refresh", headers=csrf_header(browser)).status_code == 200


@pytest.mark.parametrize("make", COOKIE_REQUESTS.values(), ids=COOKIE_REQUESTS.keys())
@pytest.mark.parametrize("origin", [APP_ORIGIN, "http://localhost"], ids=["allowed", "same-origin"])
def test_cookie_requests_from_an_allowed_or_the_same_origin_pass(browser, make, origin):
    # The test client's requests go to http://localhost: that page is this service's own.
    tokens = signup_and_login(browser)

    response = make(browser, tokens, origin)

    assert response.status_code == 200, response.json


def test_cookie_requests_without_origin_pass(browser):
    # Clients that are not browsers send no Origin; the CSRF header still applies.
    tokens = signup_and_login(browser)

    assert browser.get("/auth/csrf").status_code == 200
    assert browser.post("/auth/refresh", headers=csrf_header(browser)).status_code == 200
    response = browser.post(
        "/auth/logout", headers=csrf_header(browser) | bearer(tokens["access_token"])
    )
    assert response.status_code == 200


def test_body_refresh_is_not_cookie_authenticated(browser):
    # A refresh token in the body is a credential the page itself holds: no Origin check.
    tokens = signup_and_login(browser)

    response = browser.post(
        "/auth/refresh",
        json={"refresh_token": tokens["refresh_token"]},
        headers={"Origin": EVIL_ORIGIN},
    )

    assert response.status_code == 200
    assert_no_cors(response)
