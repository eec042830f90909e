"""An email goes out only once the request's changes are committed (docs/adr/1501):
a request that fails after a service changed something keeps nothing and sends nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import has_request_context

from auth_service.extensions import db
from auth_service.persistence.models import User
from auth_service.services import account_emails
from helpers import PASSWORD, assert_error, login, refresh, row_count

VERIFY = "Verify your email address"
CHANGED = "Your password was changed"
RESET = "Reset your password"
NEW_PASSWORD = "a brand new passphrase 42"


def fail_after(monkeypatch, module, name):
    """Make ``module.name`` do its work, then raise: the request fails after the change.
    Returns the real one."""
    real = getattr(module, name)

    def failing(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("the answer could not be built")

    monkeypatch.setattr(module, name, failing)
    return real


@pytest.fixture
def failing_commit(monkeypatch):
    """The database refuses every request's COMMIT (a connection lost at that moment)."""
    real = db.session.commit

    def commit():
        if has_request_context():
            raise sa.exc.OperationalError("COMMIT", None, ConnectionError("server closed"))
        real()

    monkeypatch.setattr(db.session, "commit", commit)


def test_a_signup_that_fails_after_creating_the_account_keeps_no_row_and_sends_nothing(
    client, smtp, auth, in_db, monkeypatch
):
    real = fail_after(monkeypatch, account_emails, "send_verification")

    assert_error(auth.signup(), 500, "internal_error")

    assert row_count(in_db, User) == 0
    assert smtp.to("alice@example.com") == []
    monkeypatch.setattr(account_emails, "send_verification", real)
    # The dropped email does not ride along with the next request's commit either.
    assert auth.signup().status_code == 201
    assert len(smtp.to("alice@example.com", VERIFY)) == 1


def test_a_password_change_whose_answer_fails_changes_nothing(
    client, smtp, alice_tokens, alice_headers, monkeypatch
):
    fail_after(monkeypatch, account_emails, "send_password_changed")

    response = client.put(
        "/auth/change-password",
        headers=alice_headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert_error(response, 500, "internal_error")
    assert smtp.to("alice@example.com", CHANGED) == []
    assert login(client, password=NEW_PASSWORD).status_code == 401
    assert login(client).status_code == 200
    # Nothing was revoked: the session the change would have ended still refreshes.
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "path, body, subject",
    [
        ("/auth/verify-email/resend", None, VERIFY),
        ("/auth/forgot-password", {"email": "alice@example.com"}, RESET),
    ],
)
def test_no_email_when_the_requests_commit_fails(
    client, smtp, alice_headers, failing_commit, path, body, subject
):
    sent_before = len(smtp.to("alice@example.com", subject))

    assert_error(client.post(path, headers=alice_headers, json=body), 503, "database_unavailable")

    assert len(smtp.to("alice@example.com", subject)) == sent_before
