"""Google/GitHub login of an account with two-step verification on: the callback starts
no session; it hands the browser an mfa token in a cookie for POST /auth/login/mfa (to
FRONTEND_URL/mfa), or answers as POST /auth/login does. Linking another identity is a
change that needs aal2.

The providers sign with the real clock, so the codes here are not frozen: the
enrolment spends the current step's code, and the login uses the next step's, which the
one-step skew window accepts.
"""

from __future__ import annotations

import pytest

from auth_service.extensions import db
from auth_service.persistence.models import Session
from dance import assert_error, sign_in, start_link
from helpers import bearer, claims, me, row_count, set_cookies
from mfa_helpers import aal1_session, challenge_rows, enrol, totp

FRONTEND = "https://app.example.com/after-login"
COOKIE_PATH = "/auth/login/mfa"
EMAILS = {"google": "victor@example.com", "github": "octo@example.com"}


@pytest.fixture
def enrolled_via(client):
    """``enrolled_via(provider)``: the provider's user signed in once (a new account) and
    enrolled an authenticator app: the enrolment's answer plus ``secret``."""

    def run(provider):
        first = sign_in(client, provider)
        assert first.status_code == 200, first.json
        return enrol(client, first.json["access_token"])

    return run


@pytest.fixture
def frontend(make_oauth_app):
    """A browser on an app with FRONTEND_URL set."""
    return make_oauth_app(FRONTEND_URL=FRONTEND).test_client()


def test_the_callback_sends_the_browser_to_the_mfa_page_with_a_cookie(
    frontend, enrolled_via, in_db
):
    enrolled_via("google")
    sessions_before = row_count(in_db, Session)

    response = sign_in(frontend, "google")

    assert response.status_code == 302
    assert response.headers["Location"] == FRONTEND + "/mfa"
    assert response.headers["Cache-Control"] == "no-store"
    cookies = set_cookies(response)
    # The mfa token's cookie (and the OAuth state's session): no refresh, CSRF or device one.
    assert set(cookies) - {"__Host-session"} == {"mfa_token"}
    cookie = cookies["mfa_token"]
    assert (cookie["path"], cookie["httponly"], cookie["max-age"]) == (COOKIE_PATH, True, "300")
    assert cookie["samesite"] == "Lax" and cookie["secure"] is True
    assert cookie["value"] not in response.headers["Location"]
    assert cookie["value"] not in response.get_data(as_text=True)
    assert row_count(in_db, Session) == sessions_before
    [row] = challenge_rows(in_db)
    assert row.amr == "fed"


def test_the_mfa_page_finishes_the_login_with_the_cookie_and_the_csrf_header(
    frontend, enrolled_via, in_db
):
    secret = enrolled_via("google")["secret"]
    sign_in(frontend, "google")

    pending = frontend.get(COOKIE_PATH)
    assert pending.status_code == 200
    assert pending.json["methods"] == ["totp", "recovery_code"]
    response = frontend.post(
        COOKIE_PATH,
        json={"code": totp(secret, 1)},
        headers={"X-CSRF-TOKEN": pending.json["csrf_token"]},
    )

    assert response.status_code == 200, response.json
    access = claims(response.json["access_token"])
    assert (access["aal"], access["amr"]) == ("aal2", ["fed", "otp", "mfa"])
    assert me(frontend, response.json["access_token"]).json["email"] == "victor@example.com"
    cookies = set_cookies(response)
    assert {"refresh_token_cookie", "csrf_refresh_token"} <= set(cookies)
    assert cookies["mfa_token"]["value"] == ""
    assert in_db(lambda: db.session.get(Session, access["sid"]).amr) == "fed otp mfa"


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_the_cookie_without_the_csrf_header_is_refused(frontend, enrolled_via, in_db, csrf):
    secret = enrolled_via("google")["secret"]
    sign_in(frontend, "google")
    headers = {} if csrf is None else {"X-CSRF-TOKEN": csrf}

    response = frontend.post(COOKIE_PATH, json={"code": totp(secret, 1)}, headers=headers)

    assert_error(response, 403, "csrf_failed")
    assert [row.attempts for row in challenge_rows(in_db)] == [0]


def test_the_cookie_from_a_foreign_origin_is_refused(frontend, enrolled_via, in_db):
    secret = enrolled_via("google")["secret"]
    sign_in(frontend, "google")
    csrf = frontend.get(COOKIE_PATH).json["csrf_token"]

    response = frontend.post(
        COOKIE_PATH,
        json={"code": totp(secret, 1)},
        headers={"X-CSRF-TOKEN": csrf, "Origin": "https://evil.example"},
    )

    assert_error(response, 403, "origin_not_allowed")
    assert row_count(in_db, Session) == 1  # the enrolment's


@pytest.mark.parametrize("provider", ["google", "github"])
def test_without_frontend_url_the_callback_answers_as_the_password_login(
    client, enrolled_via, in_db, provider
):
    secret = enrolled_via(provider)["secret"]

    response = sign_in(client, provider)

    assert response.status_code == 200
    assert response.json["mfa_required"] is True
    assert response.json["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in response.json and "refresh_token" not in response.json
    assert "refresh_token_cookie" not in set_cookies(response)
    finished = client.post(
        COOKIE_PATH, json={"mfa_token": response.json["mfa_token"], "code": totp(secret, 1)}
    )
    assert finished.status_code == 200, finished.json
    assert claims(finished.json["access_token"])["amr"] == ["fed", "otp", "mfa"]
    assert me(client, finished.json["access_token"]).json["email"] == EMAILS[provider]


def test_an_allow_listed_next_gets_the_cookie_without_frontend_url(make_oauth_app, enrolled_via):
    enrolled_via("google")
    browser = make_oauth_app(OAUTH_REDIRECT_ALLOWLIST=("/welcome",)).test_client()

    response = sign_in(browser, "google", next="/welcome")

    assert response.status_code == 302
    assert response.headers["Location"] == "/welcome"
    assert set(set_cookies(response)) - {"__Host-session"} == {"mfa_token"}


def test_a_wrong_code_after_the_provider_is_refused(client, enrolled_via):
    enrolled_via("google")
    mfa_token = sign_in(client, "google").json["mfa_token"]

    response = client.post(COOKIE_PATH, json={"mfa_token": mfa_token, "code": "000000"})

    assert_error(response, 401, "invalid_mfa_code")


def test_linking_another_provider_needs_aal2(oauth_app, client, enrolled_via, in_db):
    enrolled = enrolled_via("google")
    aal1 = aal1_session(oauth_app, "victor@example.com")

    refused = start_link(client, "github", bearer(aal1["access_token"]), password=None)
    assert_error(refused, 403, "mfa_required")

    allowed = start_link(client, "github", bearer(enrolled["access_token"]), password=None)
    assert allowed.status_code == 200, allowed.json
