"""The login of an account with two-step verification on: the password earns an mfa
token, POST /auth/login/mfa trades it and a code for the session.

The rules of the mfa token (single use, five minutes, five codes, bound to the account's
token version, never a JWT of ours and never taken for one), of codes (wrong, expired,
replayed, a clock skew of exactly one step), the mfa cookie with its CSRF and Origin
checks, the failure budget the codes share with passwords, and what a refresh keeps.
The clock is frozen (tests/mfa_fixtures.py).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from flask import Response

from auth_service.extensions import db
from auth_service.http.responses import set_mfa_cookie
from auth_service.security import link_tokens
from auth_service.services import accounts
from auth_service.services.accounts import find_by_email
from config import TestingConfig
from helpers import (
    LOGIN_TIME,
    PASSWORD,
    WRONG_PASSWORD,
    assert_error,
    assert_rate_limited,
    bearer,
    claims,
    client_from,
    csrf_header,
    login,
    me,
    refresh,
    set_cookies,
    stored_user,
)
from mfa_helpers import (
    COOKIE_PATH,
    STEP,
    aal1_session,
    challenge,
    challenge_rows,
    cookie_step,
    enrol,
    first_step,
    second_step,
    session_row,
    session_rows,
    totp,
)

NEW_PASSWORD = "a brand new passphrase 42"


def wrong(secret: str) -> str:
    """A code that is no code of the current step or its neighbours."""
    near = {totp(secret, offset) for offset in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


# --- the first step -------------------------------------------------------------------


def test_the_password_earns_an_mfa_token_and_no_session(client, enrolled, in_db):
    sessions_before = session_rows(in_db)

    response = login(client)

    assert response.status_code == 200
    body = response.json
    assert set(body) == {"mfa_required", "mfa_token", "expires_in", "methods"}
    assert body["mfa_required"] is True
    assert body["expires_in"] == 300
    assert body["methods"] == ["totp", "recovery_code"]
    # No refresh, CSRF, device or mfa cookie: the client holds the mfa token.
    assert set_cookies(response) == {}
    assert [s.id for s in session_rows(in_db)] == [s.id for s in sessions_before]
    [row] = challenge_rows(in_db)
    assert row.id == hashlib.sha256(body["mfa_token"].encode()).hexdigest()
    assert body["mfa_token"] not in row.id
    assert (row.amr, row.attempts, row.used_at) == ("pwd", 0, None)
    assert row.expires_at == LOGIN_TIME + STEP + timedelta(minutes=5)
    assert row.token_version == stored_user(in_db).token_version


@pytest.mark.parametrize("transport", ["both", "cookie", "body"])
def test_the_password_step_sets_no_cookie_whatever_the_transport(
    app, client, enrolled, monkeypatch, transport
):
    monkeypatch.setitem(app.config, "LOGIN_REFRESH_TRANSPORT", transport)

    response = login(client)

    assert set(response.json) == {"mfa_required", "mfa_token", "expires_in", "methods"}
    assert set_cookies(response) == {}


def test_the_mfa_cookie_follows_the_refresh_cookies_settings(app, monkeypatch):
    """The cookie a Google/GitHub callback sets (tests/oauth/test_oauth_mfa.py)."""
    settings = {
        "JWT_COOKIE_SECURE": False,
        "JWT_COOKIE_SAMESITE": "Strict",
        "JWT_COOKIE_DOMAIN": "auth.example.test",
    }
    for name, value in settings.items():
        monkeypatch.setitem(app.config, name, value)
    response = Response()
    with app.test_request_context():
        set_mfa_cookie(response, "t")

    cookie = set_cookies(response)["mfa_token"]

    assert "secure" not in cookie
    assert cookie["samesite"] == "Strict"
    assert cookie["domain"] == "auth.example.test"
    assert (cookie["path"], cookie["httponly"], cookie["max-age"]) == (COOKIE_PATH, True, "300")


def test_a_wrong_password_answers_as_for_an_account_without_mfa(app, auth, enrolled):
    assert auth.signup("bob@example.com", "bob").status_code == 201

    answers = [
        login(app.test_client(), email, WRONG_PASSWORD)
        for email in ("alice@example.com", "bob@example.com")
    ]

    with_mfa, without = answers
    assert with_mfa.status_code == without.status_code == 401
    assert with_mfa.json == without.json
    assert with_mfa.json["error"] == "invalid_credentials"
    assert set_cookies(with_mfa) == set_cookies(without) == {}
    same_headers = {"Content-Type", "Content-Length", "WWW-Authenticate", "Cache-Control"}
    assert {h: with_mfa.headers.get(h) for h in same_headers} == {
        h: without.headers.get(h) for h in same_headers
    }


# --- the second step ------------------------------------------------------------------


def test_the_second_step_answers_exactly_as_a_login(client, enrolled, in_db):
    mfa_token = first_step(client)

    response = second_step(client, mfa_token, code=totp(enrolled["secret"]))

    assert response.status_code == 200, response.json
    body = response.json
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "csrf_token"}
    cookies = set_cookies(response)
    assert {"refresh_token_cookie", "csrf_refresh_token"} <= set(cookies)
    assert cookies["mfa_token"]["value"] == "" and cookies["mfa_token"]["path"] == COOKIE_PATH
    access = claims(body["access_token"])
    assert access["aal"] == "aal2"
    assert access["amr"] == ["pwd", "otp", "mfa"]
    assert access["auth_time"] == int((LOGIN_TIME + STEP).timestamp())
    session = session_row(in_db, access["sid"])
    assert (session.aal, session.amr) == ("aal2", "pwd otp mfa")
    assert challenge_rows(in_db)[0].used_at is not None
    assert me(client, body["access_token"]).json["email"] == "alice@example.com"
    # The browser's cookie refresh works as after a password-only login.
    assert client.post("/auth/refresh", headers=csrf_header(client)).status_code == 200


def test_the_mfa_token_is_single_use(client, enrolled, clock, in_db):
    mfa_token = first_step(client)
    assert second_step(client, mfa_token, code=totp(enrolled["secret"])).status_code == 200
    clock.tick(STEP)

    again = second_step(client, mfa_token, code=totp(enrolled["secret"]))

    assert_error(again, 401, "invalid_mfa_token")
    assert len(session_rows(in_db)) == 2  # the enrolment's and the one login


def test_a_wrong_code_leaves_the_token_usable(client, enrolled, in_db):
    mfa_token = first_step(client)

    assert_error(
        second_step(client, mfa_token, code=wrong(enrolled["secret"])), 401, "invalid_mfa_code"
    )

    assert challenge_rows(in_db)[0].attempts == 1
    assert second_step(client, mfa_token, code=totp(enrolled["secret"])).status_code == 200


def test_five_wrong_codes_kill_the_mfa_token(client, enrolled, in_db):
    mfa_token = first_step(client)
    bad = wrong(enrolled["secret"])

    answers = [second_step(client, mfa_token, code=bad) for _ in range(5)]
    sixth = second_step(client, mfa_token, code=totp(enrolled["secret"]))

    for answer in answers:
        assert_error(answer, 401, "invalid_mfa_code")
    assert_error(sixth, 401, "invalid_mfa_token")
    assert challenge_rows(in_db)[0].attempts == 5
    assert len(session_rows(in_db)) == 1
    # A new login starts with five attempts of its own.
    assert second_step(client, first_step(client), code=totp(enrolled["secret"])).status_code == 200


def test_wrong_recovery_codes_count_as_attempts_too(client, enrolled):
    mfa_token = first_step(client)
    for _ in range(5):
        response = second_step(client, mfa_token, recovery_code="aaaa-bbbb-cccc-dddd")
        assert_error(response, 401, "invalid_mfa_code")

    last = second_step(client, mfa_token, recovery_code=enrolled["recovery_codes"][0])

    assert_error(last, 401, "invalid_mfa_token")


@pytest.mark.parametrize("seconds, alive", [(299, True), (300, False), (301, False)])
def test_the_mfa_token_lives_five_minutes(client, enrolled, clock, seconds, alive):
    mfa_token = first_step(client)
    clock.tick(timedelta(seconds=seconds))

    response = second_step(client, mfa_token, code=totp(enrolled["secret"]))

    if alive:
        assert response.status_code == 200
    else:
        assert_error(response, 401, "invalid_mfa_token")


@pytest.mark.parametrize("token", ["unknown-token", "x" * 128, hashlib.sha256(b"x").hexdigest()])
def test_an_unknown_mfa_token_is_refused(client, enrolled, token):
    response = second_step(client, token, code=totp(enrolled["secret"]))
    assert_error(response, 401, "invalid_mfa_token")


def test_the_row_of_an_mfa_token_is_not_an_mfa_token(client, enrolled, in_db):
    first_step(client)
    stored = challenge_rows(in_db)[0].id

    response = second_step(client, stored, code=totp(enrolled["secret"]))

    assert_error(response, 401, "invalid_mfa_token")


@pytest.mark.parametrize(
    "body",
    [
        {"code": "123456"},
        {"mfa_token": "t"},
        {"mfa_token": "t", "code": "123456", "recovery_code": "abcd-efgh-ijkl-mnop"},
        {"mfa_token": "t", "code": "12345"},
        {"mfa_token": "t", "recovery_code": "short"},
        {"mfa_token": "x" * 129, "code": "123456"},
    ],
)
def test_the_second_step_validates_its_body(client, enrolled, body):
    response = client.post("/auth/login/mfa", json=body)
    if "mfa_token" not in body:
        # Without a token in the body, the cookie is looked for: there is none.
        assert_error(response, 401, "invalid_mfa_token")
    else:
        assert_error(response, 422)


def test_a_deactivated_accounts_mfa_token_is_dead(client, enrolled, superuser_headers, in_db):
    mfa_token = first_step(client)
    user_id = stored_user(in_db).id
    assert client.put(f"/users/{user_id}/deactivate", headers=superuser_headers).status_code == 200

    response = second_step(client, mfa_token, code=totp(enrolled["secret"]))

    assert_error(response, 401, "invalid_mfa_token")


# --- codes: wrong, expired, replayed, reused; the skew window -----------------------------


@pytest.mark.parametrize("offset", [-1, 1])
def test_a_code_one_step_off_is_accepted(app, enrolled, clock, offset):
    clock.tick(timedelta(minutes=10))
    mfa_token = first_step(app.test_client())

    response = second_step(app.test_client(), mfa_token, code=totp(enrolled["secret"], offset))

    assert response.status_code == 200, response.json


@pytest.mark.parametrize("offset", [-2, 2, -3, 3, -20])
def test_a_code_two_steps_off_or_more_is_refused(app, enrolled, clock, offset):
    clock.tick(timedelta(minutes=10))
    mfa_token = first_step(app.test_client())
    code = totp(enrolled["secret"], offset)
    if code in {totp(enrolled["secret"], near) for near in (-1, 0, 1)}:
        pytest.skip("this step's code happens to equal a code of the window")

    response = second_step(app.test_client(), mfa_token, code=code)

    assert_error(response, 401, "invalid_mfa_code")


def test_the_window_is_one_step_either_side_of_the_step_not_of_the_second(app, enrolled, clock):
    # At the last second of a step, the code two steps back is 61 seconds old: refused;
    # the next step's code, 1 second ahead, and the one after it: only the next.
    clock.move_to(LOGIN_TIME + timedelta(minutes=10, seconds=29))
    secret = enrolled["secret"]

    refused = second_step(app.test_client(), first_step(app.test_client()), code=totp(secret, -2))
    accepted = second_step(app.test_client(), first_step(app.test_client()), code=totp(secret, 1))

    assert_error(refused, 401, "invalid_mfa_code")
    assert accepted.status_code == 200


def test_a_code_is_accepted_once(app, enrolled):
    code = totp(enrolled["secret"])
    assert (
        second_step(app.test_client(), first_step(app.test_client()), code=code).status_code == 200
    )

    replayed = second_step(app.test_client(), first_step(app.test_client()), code=code)

    assert_error(replayed, 401, "invalid_mfa_code")


def test_a_code_of_an_earlier_step_is_refused_after_a_later_one(app, enrolled):
    # The next step's code (early clock) is used: the current step's is then spent too.
    secret = enrolled["secret"]
    ahead = second_step(app.test_client(), first_step(app.test_client()), code=totp(secret, 1))
    assert ahead.status_code == 200

    earlier = second_step(app.test_client(), first_step(app.test_client()), code=totp(secret))

    assert_error(earlier, 401, "invalid_mfa_code")


def test_the_enrolments_code_does_not_sign_in(app, client, alice):
    enrolled = enrol(client, alice["access_token"])

    replayed = second_step(
        app.test_client(), first_step(app.test_client()), code=totp(enrolled["secret"])
    )

    assert_error(replayed, 401, "invalid_mfa_code")


def test_a_code_proven_at_login_is_not_taken_by_a_step_up(app, client, enrolled):
    code = totp(enrolled["secret"])
    assert second_step(client, first_step(client), code=code).status_code == 200
    aal1 = aal1_session(app)

    response = challenge(client, aal1["access_token"], code=code)

    assert_error(response, 400, "wrong_mfa_code")


# --- never the wrong kind of token --------------------------------------------------------


def test_the_mfa_token_is_no_access_or_refresh_token(app, client, enrolled):
    mfa_token = first_step(client)

    assert_error(me(client, mfa_token), 401)
    assert_error(client.get("/auth/mfa/factors", headers=bearer(mfa_token)), 401)
    assert_error(refresh(client, mfa_token), 401)
    assert_error(client.post("/auth/logout", json={"refresh_token": mfa_token}), 401)
    browser = app.test_client()
    browser.set_cookie("refresh_token_cookie", mfa_token, path="/auth")
    assert_error(browser.post("/auth/refresh", headers={"X-CSRF-TOKEN": "x"}), 401)
    # None of that spent it.
    assert second_step(client, mfa_token, code=totp(enrolled["secret"])).status_code == 200


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_an_access_or_refresh_token_is_no_mfa_token(client, enrolled, in_db, kind):
    sessions_before = len(session_rows(in_db))

    response = second_step(client, enrolled[kind], code=totp(enrolled["secret"]))

    # Longer than any mfa token: refused by the schema, or else as unknown.
    assert response.status_code in (401, 422)
    assert_error(response, response.status_code)
    if response.status_code == 401:
        assert response.json["error"] == "invalid_mfa_token"
    assert len(session_rows(in_db)) == sessions_before


# --- password reset and refresh ---------------------------------------------------------


def reset_password(app, client):
    with app.test_request_context():
        token = link_tokens.make_token(
            accounts.find_by_email("alice@example.com"), link_tokens.RESET_PASSWORD
        )
    response = client.post(
        "/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 200, response.json


def test_a_password_reset_does_not_bypass_two_step_verification(app, client, enrolled):
    before_reset = first_step(app.test_client())

    reset_password(app, client)

    dead = second_step(app.test_client(), before_reset, code=totp(enrolled["secret"]))
    assert_error(dead, 401, "invalid_mfa_token")
    response = login(app.test_client(), password=NEW_PASSWORD)
    assert response.json["mfa_required"] is True
    assert "access_token" not in response.json
    finished = second_step(
        app.test_client(), response.json["mfa_token"], code=totp(enrolled["secret"])
    )
    assert finished.status_code == 200
    assert claims(finished.json["access_token"])["aal"] == "aal2"


def test_a_password_change_kills_pending_mfa_tokens(app, client, enrolled, clock):
    pending = first_step(app.test_client())
    changed = client.put(
        "/auth/change-password",
        headers=bearer(enrolled["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200

    response = second_step(app.test_client(), pending, code=totp(enrolled["secret"]))

    assert_error(response, 401, "invalid_mfa_token")


def test_a_refresh_keeps_aal2(client, enrolled, clock):
    finished = second_step(client, first_step(client), code=totp(enrolled["secret"])).json
    proven = claims(finished["access_token"])
    clock.tick(timedelta(minutes=20))

    refreshed = refresh(client, finished["refresh_token"])

    assert refreshed.status_code == 200
    access = claims(refreshed.json["access_token"])
    assert (access["aal"], access["amr"], access["auth_time"]) == (
        "aal2",
        ["pwd", "otp", "mfa"],
        proven["auth_time"],
    )


def test_a_refresh_never_raises_aal1(app, client, enrolled, in_db):
    aal1 = aal1_session(app)

    refreshed = refresh(client, aal1["refresh_token"])

    assert refreshed.status_code == 200
    access = claims(refreshed.json["access_token"])
    assert (access["aal"], access["amr"]) == ("aal1", ["pwd"])
    assert session_row(in_db, access["sid"]).aal == "aal1"
    assert_error(
        client.post("/auth/mfa/recovery-codes", headers=bearer(refreshed.json["access_token"])),
        403,
        "mfa_required",
    )


def test_a_password_login_without_mfa_is_aal1(client, alice):
    access = claims(alice["access_token"])
    assert (access["aal"], access["amr"]) == ("aal1", ["pwd"])
    assert access["auth_time"] == int(LOGIN_TIME.timestamp())


# --- the mfa cookie: CSRF header and Origin ---------------------------------------------


def test_the_cookie_with_the_csrf_header_finishes_the_login(client, enrolled):
    csrf = cookie_step(client)

    response = second_step(
        client, None, headers={"X-CSRF-TOKEN": csrf}, code=totp(enrolled["secret"])
    )

    assert response.status_code == 200, response.json
    assert claims(response.json["access_token"])["aal"] == "aal2"
    # The cookie is cleared, and the token is spent anyway.
    assert client.get_cookie("mfa_token", path=COOKIE_PATH) is None


@pytest.mark.parametrize("csrf", [None, "", "not-the-value"])
def test_the_cookie_without_the_right_csrf_header_is_refused(client, enrolled, in_db, csrf):
    cookie_step(client)
    headers = {} if csrf is None else {"X-CSRF-TOKEN": csrf}

    response = second_step(client, None, headers=headers, code=totp(enrolled["secret"]))

    assert_error(response, 403, "csrf_failed")
    assert challenge_rows(in_db)[0].attempts == 0


def test_another_logins_csrf_value_does_not_fit(app, client, enrolled):
    other = cookie_step(app.test_client())
    cookie_step(client)

    response = second_step(
        client, None, headers={"X-CSRF-TOKEN": other}, code=totp(enrolled["secret"])
    )

    assert_error(response, 403, "csrf_failed")


def test_the_cookie_from_a_foreign_origin_is_refused(client, enrolled, in_db):
    csrf = cookie_step(client)

    response = second_step(
        client,
        None,
        headers={"X-CSRF-TOKEN": csrf, "Origin": "https://evil.example"},
        code=totp(enrolled["secret"]),
    )

    assert_error(response, 403, "origin_not_allowed")
    assert challenge_rows(in_db)[0].attempts == 0


def test_the_cookie_from_an_allowed_origin_works(make_app, enrolled):
    config = type("Cors", (TestingConfig,), {"CORS_ORIGINS": ["https://app.example.com"]})
    browser = make_app(config).test_client()
    csrf = cookie_step(browser)

    response = second_step(
        browser,
        None,
        headers={"X-CSRF-TOKEN": csrf, "Origin": "https://app.example.com"},
        code=totp(enrolled["secret"]),
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_without_a_cookie_or_body_token_the_second_step_is_a_401(client, enrolled):
    response = second_step(client, None, headers={"X-CSRF-TOKEN": "x"}, code="123456")
    assert_error(response, 401, "invalid_mfa_token")


def test_the_pending_step_tells_a_reloaded_page_what_it_needs(client, enrolled, clock):
    csrf = cookie_step(client)
    clock.tick(timedelta(seconds=100))

    response = client.get(COOKIE_PATH)

    assert response.status_code == 200
    assert response.json == {
        "expires_in": 200,
        "methods": ["totp", "recovery_code"],
        "csrf_token": csrf,
    }


def test_the_pending_step_needs_a_live_cookie(client, enrolled, clock):
    assert_error(client.get(COOKIE_PATH), 401, "invalid_mfa_token")
    cookie_step(client)
    assert_error(client.get(COOKIE_PATH, headers={"Origin": "https://evil.example"}), 403)
    clock.tick(timedelta(minutes=5))
    assert_error(client.get(COOKIE_PATH), 401, "invalid_mfa_token")


def test_the_pending_step_is_refused_once_the_password_changed(app, client, enrolled):
    cookie_step(client)
    with app.app_context():
        user = find_by_email("alice@example.com")
        accounts.set_password(user, "another horse battery 9")
        db.session.commit()

    assert_error(client.get(COOKIE_PATH), 401, "invalid_mfa_token")


# --- the failure budget -------------------------------------------------------------------


def test_wrong_codes_spend_the_accounts_failure_budget(app, enrolled, limits, in_db):
    limits(LOGIN_FAILURES_PER_ACCOUNT="3 per 15 minutes")
    bad = wrong(enrolled["secret"])
    for i in range(3):
        client = client_from(app, f"198.51.100.{i}")
        assert_error(second_step(client, first_step(client), code=bad), 401, "invalid_mfa_code")

    # The right password, from an address that has not failed: refused before any check.
    assert_rate_limited(login(client_from(app, "203.0.113.7")), window_seconds=15 * 60)
    assert len(challenge_rows(in_db)) == 3


def test_a_right_code_is_refused_once_the_budget_is_spent(app, enrolled, limits):
    limits(LOGIN_FAILURES_PER_ACCOUNT="2 per 15 minutes")
    client = client_from(app, "198.51.100.1")
    pending = first_step(client_from(app, "198.51.100.2"))
    bad = wrong(enrolled["secret"])
    for _ in range(2):
        assert_error(second_step(client, first_step(client), code=bad), 401)

    blocked = second_step(client_from(app, "203.0.113.7"), pending, code=totp(enrolled["secret"]))

    assert_rate_limited(blocked, window_seconds=15 * 60)


def test_wrong_step_up_codes_spend_the_budget_too(app, client, enrolled, limits):
    limits(LOGIN_FAILURES_PER_ACCOUNT="2 per 15 minutes")
    aal1 = aal1_session(app)
    for _ in range(2):
        assert_error(
            challenge(
                client_from(app, "198.51.100.9"),
                aal1["access_token"],
                code=wrong(enrolled["secret"]),
            ),
            400,
            "wrong_mfa_code",
        )

    assert_rate_limited(login(client_from(app, "203.0.113.7")), window_seconds=15 * 60)


def test_right_codes_spend_nothing(app, enrolled, limits, clock):
    limits(LOGIN_FAILURES_PER_ACCOUNT="1 per 15 minutes")
    for i in range(3):
        client = client_from(app, f"198.51.100.{i}")
        assert (
            second_step(client, first_step(client), code=totp(enrolled["secret"])).status_code
            == 200
        )
        clock.tick(STEP)
