"""After the callback: a redirect with the session in cookies (never a token in the URL)
to FRONTEND_URL or an allow-listed ``next``; every open-redirect trick refused."""

from __future__ import annotations

import pytest

from auth_service.security.redirects import is_allowed, parse_allowlist
from config import ConfigError
from dance import assert_error, at_provider, begin, path_of, sign_in
from helpers import csrf_header, me, set_cookies

ALLOWLIST = ("https://app.example.com", "https://partner.example/return", "/welcome")


@pytest.fixture
def allowlisted(make_oauth_app):
    """A browser on an app with OAUTH_REDIRECT_ALLOWLIST set and no FRONTEND_URL."""
    return make_oauth_app(OAUTH_REDIRECT_ALLOWLIST=ALLOWLIST).test_client()


def assert_session_redirect(response, target):
    """302 to ``target``, refresh + CSRF cookies set, no token in the URL or body."""
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == target
    cookies = set_cookies(response)
    refresh = cookies["refresh_token_cookie"]
    assert refresh["httponly"] is True and refresh["path"] == "/auth"
    assert "csrf_refresh_token" in cookies
    assert refresh["value"] not in response.headers["Location"]
    assert "token" not in response.headers["Location"].lower()
    assert refresh["value"] not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def test_frontend_url_gets_the_session_in_cookies(make_oauth_app):
    browser = make_oauth_app(FRONTEND_URL="https://app.example.com/after-login").test_client()

    response = sign_in(browser, "google")

    assert_session_redirect(response, "https://app.example.com/after-login")
    # The frontend then trades the cookie for an access token.
    refreshed = browser.post("/auth/refresh", headers=csrf_header(browser))
    assert refreshed.status_code == 200
    assert "refresh_token" not in refreshed.json
    assert me(browser, refreshed.json["access_token"]).json["email"] == "victor@example.com"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://app.example.com",
        "https://app.example.com/dashboard?tab=1#top",
        "HTTPS://APP.EXAMPLE.COM:443/x",
        "https://partner.example/return/deep/link",
        "/welcome",
        "/welcome/tour?step=2",
    ],
)
def test_allow_listed_next_is_followed(allowlisted, next_url):
    response = sign_in(allowlisted, "github", next=next_url)
    # (werkzeug writes scheme and host in lower case)
    assert_session_redirect(
        response, next_url.replace("HTTPS://APP.EXAMPLE.COM", "https://app.example.com")
    )


def test_next_wins_over_frontend_url(make_oauth_app):
    browser = make_oauth_app(
        FRONTEND_URL="https://app.example.com/", OAUTH_REDIRECT_ALLOWLIST=ALLOWLIST
    ).test_client()
    assert_session_redirect(sign_in(browser, "google", next="/welcome"), "/welcome")


def test_frontend_url_is_itself_allowed_as_next(make_oauth_app):
    browser = make_oauth_app(FRONTEND_URL="https://app.example.com/spa").test_client()
    target = "https://app.example.com/spa/settings"
    assert_session_redirect(sign_in(browser, "google", next=target), target)


def test_each_login_attempt_keeps_its_own_next(allowlisted):
    first = begin(allowlisted, "google", next="/welcome/one")
    second = begin(allowlisted, "google", next="/welcome/two")

    assert allowlisted.get(path_of(at_provider(second))).headers["Location"] == "/welcome/two"
    assert allowlisted.get(path_of(at_provider(first))).headers["Location"] == "/welcome/one"


def test_without_frontend_url_or_next_the_callback_answers_json(client):
    response = sign_in(client, "google")
    assert response.status_code == 200
    assert {"access_token", "refresh_token"} <= set(response.json)


OPEN_REDIRECTS = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https:///evil.example",
    "https:\\\\evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "javascript://app.example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "/%00/evil.example",
    "https://evil.example",
    "https://app.example.com.evil.example",
    "https://app.example.com@evil.example",
    "https://evil.example\\@app.example.com",
    "https://evil.example#@app.example.com",
    "https://evil.example?@app.example.com",
    "http://app.example.com",
    "https://app.example.com:8443/",
    "ftp://app.example.com",
    "https://partner.example/returnX",
    "https://partner.example/",
    "https://partner.example/x/../return",
    "/welcomeX",
    "/welcome/../admin",
    "/welcome/%2e%2e/admin",
    "/admin",
    "welcome",
    "%2F%2Fevil.example",
    "https://app.example.com\u3002evil.example",
    "https://app.example.com:99999",
    "",
]


@pytest.mark.parametrize("next_url", OPEN_REDIRECTS)
def test_open_redirects_are_refused_at_login(allowlisted, google, next_url):
    response = allowlisted.get("/auth/google/login", query_string={"next": next_url})

    assert response.status_code in (400, 422)
    assert response.is_json and "Location" not in response.headers
    assert google.authorize_requests == []


@pytest.mark.parametrize("next_url", OPEN_REDIRECTS)
def test_open_redirects_are_not_allowed(next_url):
    assert not is_allowed(next_url, parse_allowlist(ALLOWLIST, None))


def test_invalid_redirect_error_shape(allowlisted):
    response = allowlisted.get("/auth/github/login", query_string={"next": "//evil.example"})
    assert_error(response, 400, "invalid_redirect")


def test_non_string_next_is_not_allowed():
    assert not is_allowed(None, parse_allowlist(ALLOWLIST, None))
    assert not is_allowed(["/welcome"], parse_allowlist(ALLOWLIST, None))


@pytest.mark.parametrize(
    "settings",
    [
        {"FRONTEND_URL": "javascript:alert(1)"},
        {"FRONTEND_URL": "/relative"},
        {"FRONTEND_URL": "//evil.example"},
        {"OAUTH_REDIRECT_ALLOWLIST": ("https:evil.example",)},
        {"OAUTH_REDIRECT_ALLOWLIST": ("//evil.example",)},
        {"GOOGLE_DISCOVERY_URL": "https://accounts.google.com/"},
    ],
)
def test_unsafe_redirect_settings_refuse_to_start(make_oauth_app, settings):
    with pytest.raises(ConfigError):
        make_oauth_app(**settings)


@pytest.mark.parametrize("frontend_url", [None, "https://app.example.com/after-login"])
def test_a_provider_login_remembers_the_device(make_oauth_app, frontend_url):
    # The device cookie keeps the owner's browser out of the account's failure limit.
    browser = make_oauth_app(FRONTEND_URL=frontend_url).test_client()

    response = sign_in(browser, "google")

    assert response.status_code == (302 if frontend_url else 200)
    device = set_cookies(response)["auth_device"]
    assert device["path"] == "/auth" and device["httponly"] is True
    assert device["max-age"] == str(90 * 24 * 3600)
