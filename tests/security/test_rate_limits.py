"""Rate limits: login per client IP and per account, signup, refresh and change-password;
the client IP comes from ProxyFix only; RATELIMIT_ENABLED switches them off.

Every limit is tightened per test with the ``limits`` fixture (TestingConfig keeps them
at 1000 per minute); counters start empty in every test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time

from auth_service.persistence.models import RefreshToken, User
from config import DevelopmentConfig, ProductionConfig, TestingConfig, load_config
from helpers import (
    LOGIN_TIME,
    PASSWORD,
    PRODUCTION_SECRETS,
    WRONG_PASSWORD,
    assert_rate_limited,
    bearer,
    claims,
    client_from,
    login,
    refresh,
    row_count,
    token_rows,
    user_columns,
)

ALICE_IP = "10.0.0.1"
ATTACKER_IP = "10.0.0.66"


@pytest.fixture
def alice(auth):
    """Alice's account (signed up from the test client's default address)."""
    assert auth.signup().status_code == 201


@pytest.fixture
def attacker(app):
    """A client at the attacker's address."""
    return client_from(app, ATTACKER_IP)


@pytest.fixture
def alice_client(app):
    """A client at Alice's own address."""
    return client_from(app, ALICE_IP)


def sessions(in_db) -> list[tuple[int, str]]:
    """(user id, IP) of every refresh token row."""
    return [(row.user_id, row.ip_address) for row in token_rows(in_db)]


# --- login ----------------------------------------------------------------------------


def test_password_spraying_from_one_ip_is_limited(app, auth, attacker, limits, in_db):
    limits(LOGIN_PER_IP="3 per minute")
    emails = [f"user{i}@example.com" for i in range(4)]
    for i, email in enumerate(emails):
        assert auth.signup(email, f"user{i}").status_code == 201

    sprayed = [login(attacker, email, "Password123").status_code for email in emails[:3]]
    # The fourth account with its real password: the address is out of attempts.
    blocked = login(attacker, emails[3], PASSWORD)

    assert sprayed == [401, 401, 401]
    assert_rate_limited(blocked)
    assert row_count(in_db, RefreshToken) == 0
    assert login(client_from(app, ALICE_IP), emails[3], PASSWORD).status_code == 200


def test_hammering_an_account_throttles_only_the_attackers_address(
    alice, attacker, alice_client, limits, in_db
):
    limits(LOGIN_FAILURES_PER_ACCOUNT_IP="3 per minute")

    guesses = [login(attacker, password=WRONG_PASSWORD).status_code for _ in range(3)]
    blocked = login(attacker)  # even the right password
    real_user = login(alice_client)

    assert guesses == [401, 401, 401]
    assert_rate_limited(blocked)
    assert real_user.status_code == 200
    alice_id = int(claims(real_user.json["access_token"])["sub"])
    assert sessions(in_db) == [(alice_id, ALICE_IP)]


@pytest.mark.parametrize(
    "variant", ["ALICE@example.com", " alice@example.com", "Alice@Example.COM\t"]
)
def test_email_spellings_share_the_accounts_budget(alice, attacker, limits, variant):
    limits(LOGIN_FAILURES_PER_ACCOUNT_IP="2 per minute")

    assert login(attacker, password=WRONG_PASSWORD).status_code == 401
    assert login(attacker, variant, WRONG_PASSWORD).status_code == 401

    assert_rate_limited(login(attacker, variant, WRONG_PASSWORD))


def test_distributed_guessing_hits_the_account_limit_which_expires(
    app, alice, alice_client, limits, in_db
):
    limits(LOGIN_FAILURES_PER_ACCOUNT="3 per 15 minutes")
    with freeze_time(LOGIN_TIME) as frozen:
        guesses = [
            login(client_from(app, f"198.51.100.{i}"), password=WRONG_PASSWORD).status_code
            for i in range(3)
        ]
        # The price of the account-wide limit: the real user waits too, but not for long.
        locked_out = login(alice_client)
        frozen.tick(timedelta(minutes=14))
        still_locked_out = login(alice_client)
        frozen.tick(timedelta(minutes=1, seconds=1))

        after_the_window = login(alice_client)

    assert guesses == [401, 401, 401]
    assert_rate_limited(locked_out, window_seconds=15 * 60)
    assert_rate_limited(still_locked_out, window_seconds=60)
    assert after_the_window.status_code == 200
    assert [ip for _, ip in sessions(in_db)] == [ALICE_IP]


def test_successful_logins_do_not_count_against_the_account(alice, alice_client, limits):
    limits(LOGIN_FAILURES_PER_ACCOUNT_IP="2 per minute", LOGIN_FAILURES_PER_ACCOUNT="2 per minute")

    assert [login(alice_client).status_code for _ in range(5)] == [200] * 5


# --- signup, refresh, change-password -------------------------------------------------


def test_signup_is_limited_per_ip(app, attacker, limits, in_db):
    limits(SIGNUP="2 per minute")
    bodies = [
        {"email": f"bot{i}@example.com", "username": f"bot{i}", "password": PASSWORD}
        for i in range(4)
    ]

    created = [attacker.post("/auth/signup", json=body).status_code for body in bodies[:2]]
    blocked = attacker.post("/auth/signup", json=bodies[2])

    assert created == [201, 201]
    assert_rate_limited(blocked)
    assert row_count(in_db, User) == 2
    assert client_from(app, ALICE_IP).post("/auth/signup", json=bodies[3]).status_code == 201


def test_refresh_is_limited_per_ip(alice_client, alice, limits, in_db):
    limits(REFRESH="2 per minute")
    token = login(alice_client).json["refresh_token"]
    for _ in range(2):
        token = refresh(alice_client, token).json["refresh_token"]

    blocked = refresh(alice_client, token)

    assert_rate_limited(blocked)
    latest = next(row for row in token_rows(in_db) if row.jti == claims(token)["jti"])
    assert latest.spent_at is None and latest.revoked_at is None


def test_change_password_is_limited_per_ip(attacker, alice, limits, in_db):
    # A stolen access token does not allow unlimited guesses at the current password.
    limits(PASSWORD_CHANGE="2 per minute")
    headers = bearer(login(attacker).json["access_token"])
    before = user_columns(in_db)

    def change(current):
        return attacker.put(
            "/auth/change-password",
            headers=headers,
            json={"current_password": current, "new_password": "a completely new passphrase"},
        )

    guesses = [change(WRONG_PASSWORD).status_code for _ in range(2)]
    blocked = change(PASSWORD)

    assert guesses == [400, 400]
    assert_rate_limited(blocked)
    assert user_columns(in_db) == before
    assert [row.revoked_at for row in token_rows(in_db)] == [None]


# --- client IP: ProxyFix only ---------------------------------------------------------


def test_forged_x_forwarded_for_gets_no_fresh_budget(alice, attacker, limits, in_db):
    limits(LOGIN_PER_IP="2 per minute")

    def login_as(forwarded_for, password=WRONG_PASSWORD):
        return login(attacker, password=password, headers={"X-Forwarded-For": forwarded_for})

    first = login_as("203.0.113.1", PASSWORD)
    second = login_as("203.0.113.2")
    blocked = login_as("203.0.113.3")

    assert [first.status_code, second.status_code] == [200, 401]
    assert_rate_limited(blocked)
    assert [ip for _, ip in sessions(in_db)] == [ATTACKER_IP]


class BehindOneProxyConfig(TestingConfig):
    """nginx in front: the last X-Forwarded-For hop is the client."""

    TRUSTED_PROXIES = 1
    RATELIMIT_LOGIN_PER_IP = "2 per minute"


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(make_app, alice, in_db):
    proxied = make_app(BehindOneProxyConfig)
    proxy = client_from(proxied, "10.0.0.254")

    def login_for(forwarded_for, password=WRONG_PASSWORD):
        return login(proxy, password=password, headers={"X-Forwarded-For": forwarded_for})

    first_client = [login_for("203.0.113.5").status_code for _ in range(2)]
    blocked = login_for("203.0.113.5")
    # Addresses the client puts in front of the proxy's own hop change nothing.
    spoofed = login_for("198.51.100.9, 203.0.113.5")
    second_client = login_for("203.0.113.6", PASSWORD)

    assert first_client == [401, 401]
    assert_rate_limited(blocked)
    assert_rate_limited(spoofed)
    assert second_client.status_code == 200
    assert [ip for _, ip in sessions(in_db)] == ["203.0.113.6"]


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
def test_every_strategy_limits_logins(make_app, alice, strategy):
    limited = client_from(
        make_app(
            type(
                "StrategyConfig",
                (TestingConfig,),
                {"RATELIMIT_STRATEGY": strategy, "RATELIMIT_LOGIN_PER_IP": "2 per minute"},
            )
        ),
        ATTACKER_IP,
    )

    # Frozen: a fixed or sliding window that turned over between the logins would let the
    # third one through.
    with freeze_time(LOGIN_TIME):
        answers = [login(limited) for _ in range(3)]

    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    assert_rate_limited(answers[2])


# --- switching limits off -------------------------------------------------------------


@pytest.mark.parametrize("config_class", [ProductionConfig, DevelopmentConfig])
def test_limits_are_on_by_default(config_class):
    assert load_config(config_class, environ=PRODUCTION_SECRETS)["RATELIMIT_ENABLED"] is True


@pytest.mark.parametrize("raw", ["false", "0", "off"])
def test_limits_can_be_switched_off_from_the_environment(raw):
    settings = load_config(
        ProductionConfig, environ={**PRODUCTION_SECRETS, "RATELIMIT_ENABLED": raw}
    )

    assert settings["RATELIMIT_ENABLED"] is False


class LimitsOffConfig(TestingConfig):
    RATELIMIT_ENABLED = False
    RATELIMIT_LOGIN_PER_IP = "1 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "1 per minute"
    RATELIMIT_SIGNUP = "1 per minute"


def test_switched_off_limits_never_answer_429(make_app, alice):
    unlimited = client_from(make_app(LimitsOffConfig), ATTACKER_IP)

    logins = [login(unlimited, password=WRONG_PASSWORD).status_code for _ in range(5)]
    signups = [
        unlimited.post(
            "/auth/signup",
            json={"email": f"u{i}@example.com", "username": f"user{i}", "password": PASSWORD},
        ).status_code
        for i in range(3)
    ]

    assert logins == [401] * 5
    assert signups == [201] * 3


def test_another_app_in_the_process_leaves_this_apps_limits_alone(make_app, client, alice, limits):
    # Extensions are module-level objects: building an app with limits off (or another
    # storage or key prefix) must not switch off or reset the limits of this one.
    make_app(LimitsOffConfig)
    limits(LOGIN_PER_IP="1 per minute")

    assert login(client).status_code == 200
    assert_rate_limited(login(client))
