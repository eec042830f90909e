"""Alerts to users over real SMTP: a sign-in from a new device, a reused refresh token,
a password change; each can be turned off, and none carries anything that signs in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auth_service.extensions import db
from auth_service.persistence import audit_log
from helpers import PASSWORD, bearer
from mail_helpers import html_part, text_part

ALICE = "alice@example.com"
NEW_SIGN_IN = "New sign-in to your account"
REUSE = "One of your sessions was signed out"
PASSWORD_CHANGED = "Your password was changed"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def login_from(app, ip, user_agent):
    """A login from a browser of its own (no device cookie) at ``ip``."""
    client = app.test_client()
    response = client.post(
        "/auth/login",
        json={"email": ALICE, "password": PASSWORD},
        headers={"User-Agent": user_agent},
        environ_overrides={"REMOTE_ADDR": ip},
    )
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def alice_signed_up(app):
    client = app.test_client()
    response = client.post(
        "/auth/signup",
        json={"email": ALICE, "username": "alice", "password": PASSWORD},
        headers={"User-Agent": FIREFOX},
        environ_overrides={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert response.status_code == 201


def assert_nothing_to_sign_in_with(message, tokens):
    body = text_part(message) + html_part(message)
    assert PASSWORD not in body
    assert "token=" not in body
    for token in tokens:
        assert not isinstance(token, str) or token not in body


def test_a_sign_in_from_a_new_device_is_told(app, smtp, alice_signed_up):
    tokens = login_from(app, "198.51.100.20", FIREFOX)  # same browser, same /24: known
    assert smtp.to(ALICE, NEW_SIGN_IN) == []
    other = login_from(app, "203.0.113.5", CHROME)
    message = smtp.last(ALICE, NEW_SIGN_IN)
    text = text_part(message)
    assert "Chrome on Windows" in text and "203.0.113.5" in text
    assert_nothing_to_sign_in_with(message, [*tokens.values(), *other.values()])
    login_from(app, "203.0.113.99", CHROME)  # now known
    assert len(smtp.to(ALICE, NEW_SIGN_IN)) == 1


def test_a_device_unseen_for_new_device_days_is_new_again(app, smtp, clock):
    # Signed up (with Firefox) inside the clock: the history's times are the clock's.
    client = app.test_client()
    client.post(
        "/auth/signup",
        json={"email": ALICE, "username": "alice", "password": PASSWORD},
        headers={"User-Agent": FIREFOX},
        environ_overrides={"REMOTE_ADDR": "198.51.100.7"},
    )
    for _ in range(3):  # one device, many sign-ins: still one device
        login_from(app, "198.51.100.7", FIREFOX)
    clock.tick(app.config["NEW_DEVICE_DAYS"] * 86400 - 60)
    login_from(app, "198.51.100.8", FIREFOX)
    assert smtp.to(ALICE, NEW_SIGN_IN) == []
    clock.tick(app.config["NEW_DEVICE_DAYS"] * 86400 + 60)
    login_from(app, "198.51.100.9", FIREFOX)
    assert len(smtp.to(ALICE, NEW_SIGN_IN)) == 1


def test_a_sign_in_with_no_sign_in_on_record_is_not_a_new_device(app, smtp, alice_signed_up):
    # The account's history was purged (flask audit purge): nothing to compare with, so
    # nobody is alerted, as for an account's very first sign-in.
    with app.app_context(), db.engine.begin() as connection:
        assert audit_log.purge(connection, datetime.now(UTC) + timedelta(days=1)) > 0
    login_from(app, "203.0.113.5", CHROME)
    assert smtp.to(ALICE, NEW_SIGN_IN) == []
    login_from(app, "192.0.2.1", FIREFOX)  # now the Chrome sign-in is on record
    assert len(smtp.to(ALICE, NEW_SIGN_IN)) == 1


def test_new_device_alerts_can_be_turned_off(app, smtp, alice_signed_up, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_NEW_SIGN_IN", False)
    login_from(app, "203.0.113.5", CHROME)
    assert smtp.to(ALICE, NEW_SIGN_IN) == []


def test_a_reused_refresh_token_is_told(app, smtp, alice_signed_up, clock):
    tokens = login_from(app, "198.51.100.7", FIREFOX)
    client = app.test_client()
    assert (
        client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 200
    )
    clock.tick(30)
    reused = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    message = smtp.last(ALICE, REUSE)
    assert "Firefox on Linux" in text_part(message)
    assert_nothing_to_sign_in_with(message, tokens.values())


def test_reuse_alerts_can_be_turned_off(app, smtp, alice_signed_up, clock, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_REFRESH_REUSE", False)
    tokens = login_from(app, "198.51.100.7", FIREFOX)
    client = app.test_client()
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    clock.tick(30)
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert smtp.to(ALICE, REUSE) == []


@pytest.mark.parametrize("enabled", [True, False])
def test_one_password_changed_email_unless_turned_off(
    app, smtp, alice_signed_up, monkeypatch, enabled
):
    monkeypatch.setitem(app.config, "ALERT_PASSWORD_CHANGED", enabled)
    tokens = login_from(app, "198.51.100.7", FIREFOX)
    changed = app.test_client().put(
        "/auth/change-password",
        headers=bearer(tokens["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase 7"},
    )
    assert changed.status_code == 200
    assert len(smtp.to(ALICE, PASSWORD_CHANGED)) == (1 if enabled else 0)
