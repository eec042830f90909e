"""Wrong passwords spend one set of budgets wherever a password is checked (login,
change-password, DELETE /users/me); a slot is taken before the hash is checked, so a
parallel burst verifies at most the limit; IPv6 clients count per /64; the owner's
known device is not locked out by failures from elsewhere.

Limits are tightened per test with the ``limits`` fixture; counters start empty.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from freezegun import freeze_time

from auth_service.persistence.models import RefreshToken
from auth_service.security.limits import client_network
from config import TestingConfig
from helpers import (
    LOGIN_TIME,
    PASSWORD,
    WRONG_PASSWORD,
    assert_rate_limited,
    bearer,
    client_from,
    login,
    row_count,
    set_cookies,
    user_columns,
)

ALICE_IP = "10.0.0.1"
ATTACKER_IP = "10.0.0.66"
NEW_PASSWORD = "a completely new passphrase"


@pytest.fixture
def alice_token(app, auth):
    """Alice's access token, from a login on a client of its own (no cookie reaches the
    clients the tests send requests from)."""
    assert auth.signup().status_code == 201
    return login(app.test_client()).json["access_token"]


def check_password_at(app, place: str, password: str, token: str, ip: str = ATTACKER_IP):
    """A password check of Alice's account at ``place`` from a cookie-less client at ``ip``."""
    client = client_from(app, ip)
    if place == "login":
        return login(client, password=password)
    if place == "change-password":
        return client.put(
            "/auth/change-password",
            headers=bearer(token),
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
    return client.delete("/users/me", headers=bearer(token), json={"password": password})


PLACES = ["login", "change-password", "delete-account"]
WRONG_STATUS = {"login": 401, "change-password": 400, "delete-account": 400}


# --- one set of budgets for every password check ----------------------------------------


def test_deleting_the_account_is_limited_like_a_login(app, alice_token, limits, in_db):
    # A stolen access token gave unlimited guesses at DELETE /users/me.
    limits(LOGIN_FAILURES_PER_ACCOUNT_IP="3 per minute")
    before = user_columns(in_db)

    guesses = [
        check_password_at(app, "delete-account", WRONG_PASSWORD, alice_token).status_code
        for _ in range(3)
    ]
    blocked = check_password_at(app, "delete-account", PASSWORD, alice_token)

    assert guesses == [400, 400, 400]
    assert_rate_limited(blocked)
    assert user_columns(in_db) == before


@pytest.mark.parametrize("refused_at", PLACES)
@pytest.mark.parametrize("spent_at", PLACES)
def test_wrong_passwords_anywhere_spend_the_same_account_budget(
    app, alice_token, limits, in_db, spent_at, refused_at
):
    # The account is the same whether the request names it by email or by access token.
    limits(LOGIN_FAILURES_PER_ACCOUNT="3 per 15 minutes")
    before = user_columns(in_db)
    guesses = [
        check_password_at(app, spent_at, WRONG_PASSWORD, alice_token, f"198.51.100.{i}").status_code
        for i in range(3)
    ]

    # The right password, from an address that has not failed: refused before any check.
    blocked = check_password_at(app, refused_at, PASSWORD, alice_token, ALICE_IP)

    assert guesses == [WRONG_STATUS[spent_at]] * 3
    assert_rate_limited(blocked, window_seconds=15 * 60)
    assert user_columns(in_db) == before
    assert row_count(in_db, RefreshToken) == 1  # the session alice_token came from


def test_the_account_and_ip_budget_is_shared_too(app, alice_token, limits):
    limits(LOGIN_FAILURES_PER_ACCOUNT_IP="2 per minute")
    for place in ("delete-account", "change-password"):
        assert check_password_at(app, place, WRONG_PASSWORD, alice_token).status_code == 400

    assert_rate_limited(check_password_at(app, "login", PASSWORD, alice_token))
    assert check_password_at(app, "login", PASSWORD, alice_token, ALICE_IP).status_code == 200


def test_wrong_passwords_for_any_account_spend_the_ip_budget(app, auth, alice_token, limits):
    limits(LOGIN_FAILURES_PER_IP="2 per minute")
    assert auth.signup("bob@example.com", "bob").status_code == 201
    attacker = client_from(app, ATTACKER_IP)
    assert login(attacker, "bob@example.com", WRONG_PASSWORD).status_code == 401
    assert check_password_at(app, "delete-account", WRONG_PASSWORD, alice_token).status_code == 400

    assert_rate_limited(login(attacker, "carol@example.com", WRONG_PASSWORD))
    assert_rate_limited(login(attacker, "bob@example.com", PASSWORD))
    assert login(client_from(app, ALICE_IP), "bob@example.com", PASSWORD).status_code == 200


@pytest.mark.parametrize("place", ["change-password", "delete-account"])
def test_right_passwords_spend_nothing(app, auth, limits, place):
    limits(
        LOGIN_FAILURES_PER_IP="1 per minute",
        LOGIN_FAILURES_PER_ACCOUNT_IP="1 per minute",
        LOGIN_FAILURES_PER_ACCOUNT="1 per minute",
    )
    for i in range(3):
        email = f"user{i}@example.com"
        assert auth.signup(email, f"user{i}").status_code == 201
        token = login(client_from(app, ATTACKER_IP), email).json["access_token"]
        client = client_from(app, ATTACKER_IP)
        if place == "change-password":
            answer = client.put(
                "/auth/change-password",
                headers=bearer(token),
                json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            )
            assert answer.status_code == 200
        else:
            assert (
                client.delete(
                    "/users/me", headers=bearer(token), json={"password": PASSWORD}
                ).status_code
                == 204
            )


# --- counted before the work: a parallel burst ------------------------------------------

BURST, LIMIT, ROUNDS = 60, 30, 3


class BurstConfig(TestingConfig):
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = f"{LIMIT} per 15 minutes"


def wrong_password_burst(app, email: str) -> Counter:
    """BURST wrong-password logins for ``email`` at once, each from an address of its own."""
    start = threading.Barrier(BURST)

    def attempt(i):
        client = client_from(app, f"198.51.100.{i + 1}")
        start.wait()
        return login(client, email, WRONG_PASSWORD).status_code

    with ThreadPoolExecutor(BURST) as pool:
        return Counter(pool.map(attempt, range(BURST)))


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_a_parallel_burst_verifies_at_most_the_limit(request, make_app, auth, storage):
    # flask-limiter counted a failure after the response: every request of a burst passed
    # the check before any was counted.
    config = (
        BurstConfig
        if storage == "memory"
        else request.getfixturevalue("redis_limits_config")(
            RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT=f"{LIMIT} per 15 minutes"
        )
    )
    limited = make_app(config)
    for round_ in range(ROUNDS):
        email = f"burst{round_}@example.com"
        assert auth.signup(email, f"burst{round_}").status_code == 201

        statuses = wrong_password_burst(limited, email)

        assert statuses == Counter({401: LIMIT, 429: BURST - LIMIT}), (round_, statuses)
        assert_rate_limited(login(client_from(limited, ALICE_IP), email), window_seconds=15 * 60)


# --- IPv6: one client is a /64 ----------------------------------------------------------


@pytest.mark.parametrize(
    "remote_addr, key",
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::ffff:c000:201", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        # 6to4: one IPv4 address owns the whole 2002:c000:207::/48.
        ("2002:c000:207::1", "192.0.2.7"),
        ("2002:c000:207:ffff::1", "192.0.2.7"),
        # A proxy that appends the client's port to X-Forwarded-For.
        ("192.0.2.1:4711", "192.0.2.1"),
        ("[2001:db8:1:2::1]:4711", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("", "unknown"),
    ],
)
def test_client_network_is_the_ipv4_address_or_the_ipv6_64(app, remote_addr, key):
    with app.test_request_context(environ_base={"REMOTE_ADDR": remote_addr}):
        assert client_network() == key


@pytest.mark.parametrize("setting", ["LOGIN_PER_IP", "LOGIN_FAILURES_PER_ACCOUNT_IP"])
def test_addresses_in_one_ipv6_64_share_a_budget(app, auth, limits, setting):
    assert auth.signup().status_code == 201
    limits(**{setting: "2 per minute"})

    spent = [
        login(client_from(app, ip), password=WRONG_PASSWORD).status_code
        for ip in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe")
    ]
    same_64 = login(client_from(app, "2001:db8:1:2:abcd::9"))
    next_64 = login(client_from(app, "2001:db8:1:3::1"))

    assert spent == [401, 401]
    assert_rate_limited(same_64)
    assert next_64.status_code == 200


def test_an_ipv4_mapped_address_is_the_ipv4_client(app, auth, limits):
    assert auth.signup().status_code == 201
    limits(LOGIN_PER_IP="1 per minute")

    assert login(client_from(app, "192.0.2.7"), password=WRONG_PASSWORD).status_code == 401

    assert_rate_limited(login(client_from(app, "::ffff:192.0.2.7")))


class BehindOneProxyConfig(TestingConfig):
    TRUSTED_PROXIES = 1
    RATELIMIT_LOGIN_FAILURES_PER_IP = "2 per minute"


def test_a_port_in_the_forwarded_address_buys_no_fresh_budget(make_app, auth):
    # ProxyFix passes X-Forwarded-For on verbatim: with a port, every connection of one
    # client was a new address.
    assert auth.signup().status_code == 201
    proxy = client_from(make_app(BehindOneProxyConfig), "10.0.0.254")

    def login_for(forwarded_for, password=WRONG_PASSWORD):
        return login(proxy, password=password, headers={"X-Forwarded-For": forwarded_for})

    spent = [login_for(f"203.0.113.5:{port}").status_code for port in (40001, 40002)]

    assert spent == [401, 401]
    assert_rate_limited(login_for("203.0.113.5:40003", PASSWORD))
    assert login_for("203.0.113.6:40004", PASSWORD).status_code == 200


# --- the owner's known device -----------------------------------------------------------


def test_a_login_sets_a_signed_device_cookie(app, auth):
    assert auth.signup().status_code == 201

    cookie = set_cookies(login(client_from(app, ALICE_IP)))["auth_device"]

    assert cookie["path"] == "/auth"
    assert cookie["httponly"] is True and cookie["secure"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == str(90 * 24 * 3600)
    assert "alice" not in cookie["value"]


@pytest.fixture
def owner(app, auth):
    """Alice's own browser, which has signed in before."""
    assert auth.signup().status_code == 201
    browser = client_from(app, ALICE_IP)
    assert login(browser).status_code == 200
    return browser


def spray(app, times: int) -> list[int]:
    """Wrong passwords for Alice from ``times`` addresses."""
    return [
        login(client_from(app, f"203.0.113.{i + 1}"), password=WRONG_PASSWORD).status_code
        for i in range(times)
    ]


def test_failures_from_elsewhere_do_not_lock_the_owners_device_out(app, owner, limits, in_db):
    limits(LOGIN_FAILURES_PER_ACCOUNT="3 per 15 minutes")

    assert spray(app, 3) == [401, 401, 401]
    stranger = login(client_from(app, ALICE_IP))
    owners_device = login(owner)

    assert_rate_limited(stranger, window_seconds=15 * 60)
    assert owners_device.status_code == 200
    assert row_count(in_db, RefreshToken) == 2


def test_wrong_passwords_with_the_device_cookie_have_a_budget_of_their_own(app, owner, limits):
    # A stolen device cookie buys no unlimited guessing.
    limits(LOGIN_FAILURES_PER_DEVICE="2 per 15 minutes", LOGIN_FAILURES_PER_ACCOUNT="2 per minute")

    guesses = [login(owner, password=WRONG_PASSWORD).status_code for _ in range(2)]
    blocked = login(owner)

    assert guesses == [401, 401]
    assert_rate_limited(blocked, window_seconds=15 * 60)
    # They were not the account's failures: a browser without the cookie is not refused.
    assert login(client_from(app, "198.51.100.9")).status_code == 200


@pytest.mark.parametrize("cookie", ["another account's", "tampered", "expired"])
def test_only_a_valid_cookie_of_the_account_escapes_its_budget(app, auth, limits, cookie):
    assert auth.signup().status_code == 201
    assert auth.signup("bob@example.com", "bob").status_code == 201
    limits(LOGIN_FAILURES_PER_ACCOUNT="3 per 15 minutes")
    browser = client_from(app, ALICE_IP)
    with freeze_time(LOGIN_TIME) as frozen:
        if cookie == "another account's":
            assert login(browser, "bob@example.com").status_code == 200
        else:
            assert login(browser).status_code == 200
        if cookie == "tampered":
            value = browser.get_cookie("auth_device", path="/auth").value
            browser.set_cookie(
                "auth_device", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), path="/auth"
            )
        if cookie == "expired":
            frozen.tick(timedelta(days=90, seconds=1))
        assert spray(app, 3) == [401, 401, 401]

        assert_rate_limited(login(browser), window_seconds=15 * 60)


def test_a_429_at_login_says_nothing_about_the_account(app, auth, limits):
    assert auth.signup().status_code == 201
    limits(LOGIN_FAILURES_PER_ACCOUNT="1 per minute")
    for email in ("alice@example.com", "nobody@example.com"):
        assert login(client_from(app, "198.51.100.1"), email, WRONG_PASSWORD).status_code == 401

    real = login(client_from(app, "198.51.100.2"), "alice@example.com", WRONG_PASSWORD)
    unknown = login(client_from(app, "198.51.100.2"), "nobody@example.com", WRONG_PASSWORD)

    real_body, unknown_body = assert_rate_limited(real), assert_rate_limited(unknown)
    # Each window opened at its own first failure: the seconds left may differ by one.
    assert abs(int(real.headers["Retry-After"]) - int(unknown.headers["Retry-After"])) <= 1
    assert real_body.keys() == unknown_body.keys()


def signed_in_browsers(app, count: int) -> list:
    """``count`` browsers, each with a device cookie of its own for Alice."""
    browsers = [client_from(app, f"203.0.113.{i + 1}") for i in range(count)]
    for browser in browsers:
        assert login(browser).status_code == 200
    return browsers


def change_alices_password(app) -> None:
    token = login(app.test_client()).json["access_token"]
    assert (
        app.test_client()
        .put(
            "/auth/change-password",
            headers=bearer(token),
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        .status_code
        == 200
    )


def deactivate_and_reactivate_alice(app) -> None:
    runner = app.test_cli_runner()
    for command in ("deactivate", "activate"):
        assert runner.invoke(args=["users", command, "alice@example.com"]).exit_code == 0


@pytest.mark.parametrize(
    "void",
    [change_alices_password, deactivate_and_reactivate_alice],
    ids=["password change", "deactivation"],
)
def test_device_cookies_issued_before_a_new_token_version_are_void(app, auth, limits, void):
    # Mallory knew the password once and kept her browsers' cookies, each with a fresh
    # device budget, past the change that locked her out.
    assert auth.signup().status_code == 201
    limits(LOGIN_FAILURES_PER_ACCOUNT="3 per 15 minutes", LOGIN_FAILURES_PER_DEVICE="2 per minute")
    mallorys = signed_in_browsers(app, 4)
    void(app)

    guesses = [
        login(browser, password=f"guess {i}").status_code for i, browser in enumerate(mallorys)
    ]

    # Strangers again: they spend the account's budget.
    assert guesses == [401, 401, 401, 429]


def test_the_browser_that_changes_the_password_keeps_its_device(app, owner, limits):
    limits(LOGIN_FAILURES_PER_ACCOUNT="3 per 15 minutes")
    token = login(owner).json["access_token"]
    changed = owner.put(
        "/auth/change-password",
        headers=bearer(token),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200
    assert "auth_device" in set_cookies(changed)

    assert spray(app, 3) == [401, 401, 401]

    assert login(owner, password=NEW_PASSWORD).status_code == 200


def test_device_cookies_share_the_accounts_ceiling(app, auth, limits):
    # Every login mints a device cookie: without a ceiling, N cookies were N device budgets.
    assert auth.signup().status_code == 201
    limits(
        LOGIN_FAILURES_PER_DEVICE="2 per minute",
        LOGIN_FAILURES_PER_ACCOUNT_CEILING="5 per 15 minutes",
    )
    mallorys = signed_in_browsers(app, 5)

    guesses = Counter(
        login(browser, password=f"guess {i}-{j}").status_code
        for i, browser in enumerate(mallorys)
        for j in range(2)
    )
    stranger = login(client_from(app, ALICE_IP))

    assert guesses == Counter({401: 5, 429: 5})
    assert_rate_limited(stranger, window_seconds=15 * 60)


@pytest.mark.parametrize("candidate", ["right", "wrong"])
def test_a_deactivated_accounts_budget_says_nothing_about_the_password(
    client, auth, runner, limits, candidate
):
    # The right password gave its slot back although the login answered 401.
    assert auth.signup().status_code == 201
    assert runner.invoke(args=["users", "deactivate", "alice@example.com"]).exit_code == 0
    limits(LOGIN_FAILURES_PER_ACCOUNT_IP="3 per minute")

    answers = [
        login(client, password=password).status_code
        for password in (
            WRONG_PASSWORD,
            WRONG_PASSWORD + "1",
            PASSWORD if candidate == "right" else "guess",
        )
    ]

    assert answers == [401, 401, 401]
    assert_rate_limited(login(client, password=WRONG_PASSWORD + "3"))
