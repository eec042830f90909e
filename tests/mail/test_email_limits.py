"""Rate limits on the endpoints that send email: per client IP and per account."""

from __future__ import annotations

import re

import pytest

from helpers import assert_rate_limited, bearer

RESEND = "/auth/verify-email/resend"


@pytest.fixture
def tighten(app, monkeypatch):
    """Set RATELIMIT_<name> for one test (TestingConfig keeps them at 1000 per minute)."""

    def set_limit(name, value="2 per minute"):
        key = f"RATELIMIT_{name}"
        assert key in app.config
        monkeypatch.setitem(app.config, key, value)

    return set_limit


def resend(client, headers, ip="192.0.2.1"):
    return client.post(RESEND, headers=headers, environ_base={"REMOTE_ADDR": ip})


def forgot(client, email, ip="192.0.2.1"):
    return client.post(
        "/auth/forgot-password", json={"email": email}, environ_base={"REMOTE_ADDR": ip}
    )


def test_resend_is_limited_per_account_from_any_ip(client, smtp, alice_headers, tighten):
    tighten("VERIFY_RESEND_PER_ACCOUNT")
    answers = [resend(client, alice_headers, f"192.0.2.{i}") for i in range(1, 4)]
    assert [r.status_code for r in answers[:2]] == [202, 202]
    assert_rate_limited(answers[2])
    assert len(smtp.to("alice@example.com")) == 3  # signup + two resends


def test_resend_is_limited_per_ip_across_accounts(client, auth, smtp, alice_headers, tighten):
    bob = auth.signup_and_login("bob@example.com", "bob")
    tighten("VERIFY_RESEND_PER_IP")
    assert resend(client, alice_headers).status_code == 202
    assert resend(client, bearer(bob["access_token"])).status_code == 202
    assert_rate_limited(resend(client, alice_headers))
    assert resend(client, alice_headers, "198.51.100.7").status_code == 202


def test_a_refused_resend_costs_no_quota(client, smtp, alice_headers, tighten):
    tighten("VERIFY_RESEND_PER_IP")
    for _ in range(3):
        assert client.post(RESEND, environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 401
    assert resend(client, alice_headers).status_code == 202


@pytest.mark.parametrize("email", ["alice@example.com", "nobody@example.com"])
def test_forgot_password_is_limited_per_address_existing_or_not(client, auth, smtp, tighten, email):
    auth.signup()
    tighten("FORGOT_PASSWORD_PER_ACCOUNT")
    answers = [forgot(client, email, f"192.0.2.{i}") for i in range(1, 4)]
    assert [r.status_code for r in answers[:2]] == [202, 202]
    assert_rate_limited(answers[2])
    assert forgot(client, "someone.else@example.com").status_code == 202


def test_the_per_address_limit_ignores_case_and_spaces(client, smtp, tighten):
    tighten("FORGOT_PASSWORD_PER_ACCOUNT")
    forgot(client, "alice@example.com")
    forgot(client, " Alice@Example.COM")
    assert_rate_limited(forgot(client, "ALICE@example.com "))


def test_forgot_password_is_limited_per_ip(client, smtp, tighten):
    tighten("FORGOT_PASSWORD_PER_IP")
    assert forgot(client, "a@example.com").status_code == 202
    assert forgot(client, "b@example.com").status_code == 202
    assert_rate_limited(forgot(client, "c@example.com"))
    assert forgot(client, "c@example.com", "198.51.100.7").status_code == 202


def test_a_429_says_nothing_about_the_account(client, auth, smtp, tighten):
    auth.signup()
    tighten("FORGOT_PASSWORD_PER_ACCOUNT", "1 per minute")
    forgot(client, "alice@example.com")
    forgot(client, "nobody@example.com")
    real, unknown = forgot(client, "alice@example.com"), forgot(client, "nobody@example.com")
    assert_rate_limited(real)
    assert_rate_limited(unknown)
    # Each address's window opened at its own first request, so the seconds left may differ
    # by one when a second boundary falls between them; everything else must be identical.
    assert abs(int(real.headers["Retry-After"]) - int(unknown.headers["Retry-After"])) <= 1
    assert _without_digits(real.json) == _without_digits(unknown.json)


def _without_digits(body):
    return {
        key: re.sub(r"\d+", "N", value) if isinstance(value, str) else value
        for key, value in body.items()
    }
