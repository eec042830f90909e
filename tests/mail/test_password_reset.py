"""Password reset by emailed link, and the "password changed" notice."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from freezegun import freeze_time

from auth_service.errors import APIError
from auth_service.extensions import db
from auth_service.integrations import mail
from auth_service.security import link_tokens
from auth_service.services import account_emails, accounts
from helpers import PASSWORD, bearer, me, refresh, stored_user, token_rows
from mail_helpers import html_part, link_in, path_and_query, text_part, token_of

RESET = "Reset your password"
CHANGED = "Your password was changed"
VERIFY = "Verify your email address"
NEW_PASSWORD = "a brand new passphrase 42"
ANSWER = {
    "message": "If an account uses this email address, a link to reset its "
    "password has been sent to it."
}


def forgot(client, email="alice@example.com", **kwargs):
    return client.post("/auth/forgot-password", json={"email": email}, **kwargs)


def reset(client, token, password=NEW_PASSWORD):
    return client.post("/auth/reset-password", json={"token": token, "new_password": password})


@pytest.fixture
def reset_link(client, smtp, alice_tokens):
    """Alice (logged in) asked for a reset; the link of her reset email."""
    assert forgot(client).status_code == 202
    return link_in(smtp.last("alice@example.com", RESET))


# --- asking for a reset ---------------------------------------------------------------


def test_forgot_password_sends_a_reset_link(client, smtp, auth):
    auth.signup()
    response = forgot(client, "  Alice@Example.COM ")
    assert (response.status_code, response.json) == (202, ANSWER)
    message = smtp.last("alice@example.com", RESET)
    link = link_in(message)
    assert link.startswith("https://auth.example.test/auth/reset-password?token=")
    assert "60 minutes" in text_part(message)
    assert f'href="{link}"' in html_part(message).replace("&amp;", "&")


def test_forgot_password_finds_the_account_by_another_spelling(client, smtp, auth):
    auth.signup(email="x@exämple.com")

    assert forgot(client, "X@EXÄMPLE.com").status_code == 202

    assert link_in(smtp.last("x@xn--exmple-cua.com", RESET))


@pytest.mark.parametrize("email", ["nobody@example.com", "inactive@example.com"])
def test_unknown_or_inactive_accounts_get_the_same_answer_and_no_mail(
    client, smtp, auth, runner, email
):
    auth.signup()
    auth.signup("inactive@example.com", "inactive")
    runner.invoke(args=["users", "deactivate", "inactive@example.com"])
    known = forgot(client)
    other = forgot(client, email)
    assert (other.status_code, other.json) == (known.status_code, known.json) == (202, ANSWER)
    assert smtp.to(email, RESET) == []
    assert len(smtp.to("alice@example.com", RESET)) == 1


def test_both_answers_do_the_same_work(client, auth, monkeypatch):
    """A token is made and the email rendered either way; only handing it over differs."""
    auth.signup()
    calls = []
    for module, name in ((link_tokens, "make_token"), (mail, "build_message"), (mail, "send")):
        original = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k)
        )
    forgot(client)
    known, calls[:] = list(calls), []
    forgot(client, "nobody@example.com")
    assert known == ["make_token", "build_message", "send"]
    assert calls == ["make_token", "build_message"]


@pytest.mark.parametrize("body", [{}, {"email": "not-an-email"}, {"email": "a@b.c" * 60}])
def test_a_malformed_email_is_a_422(client, smtp, body):
    assert client.post("/auth/forgot-password", json=body).status_code == 422
    assert smtp.wait() == []


def test_the_link_opens_the_frontend_when_there_is_one(app, client, smtp, auth, monkeypatch):
    monkeypatch.setitem(app.config, "FRONTEND_URL", "https://app.example.test/")
    auth.signup()
    forgot(client)
    link = link_in(smtp.last("alice@example.com", RESET))
    assert link.startswith("https://app.example.test/reset-password?token=")
    assert reset(client, token_of(link)).status_code == 200


@pytest.mark.parametrize(
    "headers", [{"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example"}]
)
def test_the_host_header_does_not_change_the_link(client, smtp, auth, headers):
    auth.signup()
    assert forgot(client, headers=headers).status_code == 202
    link = link_in(smtp.last("alice@example.com", RESET))
    assert urlsplit(link).netloc == "auth.example.test"


# --- the link -------------------------------------------------------------------------


def test_following_the_link_checks_the_token_without_spending_it(client, reset_link):
    response = client.get(path_and_query(reset_link))
    assert response.status_code == 200
    assert "POST /auth/reset-password" in response.json["message"]
    assert reset(client, token_of(reset_link)).status_code == 200


def test_reset_sets_the_password(client, auth, reset_link):
    response = reset(client, token_of(reset_link))
    assert response.status_code == 200
    assert "changed" in response.json["message"]
    assert auth.login(password=PASSWORD).status_code == 401
    assert auth.login(password=NEW_PASSWORD).status_code == 200


def test_reset_ends_every_session(client, auth, alice_tokens, smtp, in_db):
    second = auth.login().json
    forgot(client)
    assert (
        reset(client, token_of(link_in(smtp.last("alice@example.com", RESET)))).status_code == 200
    )
    for tokens in (alice_tokens, second):
        assert refresh(client, tokens["refresh_token"]).status_code == 401
        assert me(client, tokens["access_token"]).status_code == 401
    assert all(row.revoked_at is not None for row in token_rows(in_db))


def test_reset_marks_the_email_verified(client, reset_link, in_db):
    assert stored_user(in_db).email_verified is None
    reset(client, token_of(reset_link))
    assert stored_user(in_db).email_verified is not None


def test_reset_keeps_an_earlier_verification_time(client, smtp, reset_link, in_db):
    token = token_of(link_in(smtp.last("alice@example.com", VERIFY)))
    assert client.post("/auth/verify-email", json={"token": token}).status_code == 200
    verified = stored_user(in_db).email_verified
    reset(client, token_of(reset_link))
    assert stored_user(in_db).email_verified == verified


def test_reset_sends_the_password_changed_notice(client, smtp, reset_link):
    reset(client, token_of(reset_link))
    notice = smtp.last("alice@example.com", CHANGED)
    assert "was changed" in text_part(notice)
    assert "alice@example.com" in html_part(notice)
    assert "token" not in text_part(notice)


def test_a_reset_token_works_once(client, reset_link):
    assert reset(client, token_of(reset_link)).status_code == 200
    again = reset(client, token_of(reset_link), "yet another passphrase 7")
    assert (again.status_code, again.json["error"]) == (400, "invalid_token")
    assert client.get(path_and_query(reset_link)).status_code == 400


def test_every_outstanding_link_dies_with_the_first_reset(client, smtp, reset_link):
    forgot(client)
    first, second = smtp.to("alice@example.com", RESET)
    assert reset(client, token_of(link_in(second))).status_code == 200
    assert reset(client, token_of(link_in(first))).json["error"] == "invalid_token"


def test_a_password_change_kills_the_link(client, reset_link, alice_headers):
    changed = client.put(
        "/auth/change-password",
        headers=alice_headers,
        json={"current_password": PASSWORD, "new_password": "changed passphrase 99"},
    )
    assert changed.status_code == 200
    assert reset(client, token_of(reset_link)).json["error"] == "invalid_token"


def test_an_expired_link_is_refused(client, auth, reset_link):
    with freeze_time(datetime.now(UTC) + timedelta(hours=1, seconds=2)):
        response = reset(client, token_of(reset_link))
    assert (response.status_code, response.json["error"]) == (400, "token_expired")
    assert auth.login(password=PASSWORD).status_code == 200


def test_a_link_works_until_it_expires(client, reset_link):
    with freeze_time(datetime.now(UTC) + timedelta(minutes=59)):
        assert reset(client, token_of(reset_link)).status_code == 200


def test_the_lifetime_is_configurable(app, client, monkeypatch, reset_link):
    monkeypatch.setitem(app.config, "PASSWORD_RESET_TOKEN_MAX_AGE", timedelta(days=1))
    with freeze_time(datetime.now(UTC) + timedelta(hours=23)):
        assert reset(client, token_of(reset_link)).status_code == 200


# --- tokens for another purpose -------------------------------------------------------


def test_a_reset_token_does_not_verify_an_email(client, reset_link, in_db):
    response = client.post("/auth/verify-email", json={"token": token_of(reset_link)})
    assert (response.status_code, response.json["error"]) == (400, "invalid_token")
    assert client.get("/auth/verify-email?token=" + token_of(reset_link)).status_code == 400
    assert stored_user(in_db).email_verified is None


def test_a_verification_token_does_not_reset_a_password(client, smtp, auth, reset_link):
    verification = token_of(link_in(smtp.last("alice@example.com", VERIFY)))
    response = reset(client, verification)
    assert (response.status_code, response.json["error"]) == (400, "invalid_token")
    assert auth.login(password=PASSWORD).status_code == 200


def test_jwts_do_not_reset_a_password(client, auth, alice_tokens):
    for jwt in (alice_tokens["access_token"], alice_tokens["refresh_token"]):
        assert reset(client, jwt).json["error"] == "invalid_token"
    assert auth.login(password=PASSWORD).status_code == 200


def test_a_reset_token_is_not_an_access_token(client, reset_link):
    assert client.get("/auth/me", headers=bearer(token_of(reset_link))).status_code == 401


# --- the new password -----------------------------------------------------------------


@pytest.mark.parametrize("password", ["short", "x" * 129])
def test_the_length_policy_applies(client, reset_link, password):
    response = reset(client, token_of(reset_link), password)
    assert response.status_code == 422
    assert "new_password" in response.json["errors"]["json"]


@pytest.mark.parametrize(
    "password", ["password123", "alice@example.com", "alicealice", "Alice Example"]
)
def test_guessable_passwords_are_refused(client, reset_link, password):
    response = reset(client, token_of(reset_link), password)
    assert response.status_code == 422
    assert response.json["errors"]["json"]["new_password"][0].startswith(
        "This password is too easy to guess"
    )


def test_a_refused_password_does_not_spend_the_link(client, reset_link):
    assert reset(client, token_of(reset_link), "password123").status_code == 422
    assert reset(client, token_of(reset_link)).status_code == 200


def test_an_account_without_a_password_can_set_one(client, smtp, auth, in_db):
    in_db(lambda: accounts.create_user("oauth@example.com", "oauthuser", None))
    forgot(client, "oauth@example.com")
    link = link_in(smtp.last("oauth@example.com", RESET))
    assert reset(client, token_of(link)).status_code == 200
    assert auth.login("oauth@example.com", NEW_PASSWORD).status_code == 200
    assert reset(client, token_of(link)).json["error"] == "invalid_token"


# --- the notice on change-password ----------------------------------------------------


def test_change_password_sends_the_notice(client, smtp, alice_headers):
    response = client.put(
        "/auth/change-password",
        headers=alice_headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 200
    [notice] = smtp.to("alice@example.com", CHANGED)
    assert "alice@example.com" in text_part(notice)
    assert html_part(notice)


def test_a_failed_change_password_sends_nothing(client, smtp, alice_headers):
    response = client.put(
        "/auth/change-password",
        headers=alice_headers,
        json={"current_password": "wrong password", "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 400
    assert smtp.to("alice@example.com", CHANGED) == []


# --- tokens stay out of the logs ------------------------------------------------------


def test_no_token_reaches_the_log(client, smtp, auth, caplog):
    caplog.set_level("DEBUG")
    auth.signup()
    verification = link_in(smtp.last("alice@example.com", VERIFY))
    client.get(path_and_query(verification))
    client.post("/auth/verify-email", json={"token": token_of(verification)})
    forgot(client)
    link = link_in(smtp.last("alice@example.com", RESET))
    client.get(path_and_query(link))
    reset(client, token_of(link))
    smtp.wait()
    for token in (token_of(verification), token_of(link)):
        assert token not in caplog.text
    assert "Reset your password" in caplog.text  # the sends themselves are logged


def test_werkzeug_request_lines_are_redacted():
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '"%s" %s %s',
        ("GET /auth/verify-email?token=abc.def.ghi&x=1 HTTP/1.1", 200, "-"),
        None,
    )
    assert link_tokens.RedactTokens().filter(record)
    assert record.getMessage() == '"GET /auth/verify-email?token=[redacted]&x=1 HTTP/1.1" 200 -'
    assert "token=abc" not in record.getMessage()


def test_the_claim_refuses_a_password_changed_meanwhile(app, reset_link, monkeypatch):
    """Two resets racing with one token: the loser finds the hash already changed."""
    token = token_of(reset_link)
    with app.test_request_context():
        # The loser has checked the token...
        checked = link_tokens.load_token(token, link_tokens.RESET_PASSWORD)
        monkeypatch.setattr(link_tokens, "load_token", lambda *args: checked)
        # ...when the winner commits its new password (another app context, another session).
        with app.app_context():
            accounts.set_password(accounts.find_by_email("alice@example.com"), "winner pass 12")
            db.session.commit()
        with pytest.raises(APIError) as raised:
            account_emails.reset_password(token, NEW_PASSWORD)
    assert raised.value.error == "invalid_token"
