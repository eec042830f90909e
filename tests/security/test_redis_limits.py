"""With REDIS_URL set, every instance of the app counts on the same Redis counters;
with Redis down or hung, the limits on passwords, signups and emails refuse instead of
counting per process, and refresh and CSRF go on uncounted.

Redis fixtures: tests/security/conftest.py.
"""

from __future__ import annotations

import socket
import threading

import pytest

from auth_service.persistence.models import RefreshToken, User
from auth_service.security.limits import counters
from config import TestingConfig
from helpers import (
    WRONG_PASSWORD,
    assert_error,
    assert_rate_limited,
    bearer,
    client_from,
    login,
    row_count,
)


@pytest.fixture
def shared_limits_config(redis_limits_config):
    return redis_limits_config(RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT="3 per minute")


class MemoryLimitsConfig(TestingConfig):
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "3 per minute"


def test_failures_on_one_instance_count_on_another(make_app, auth, redis_db, shared_limits_config):
    auth.signup()
    instance_a = make_app(shared_limits_config)
    instance_b = make_app(shared_limits_config)
    assert instance_a.config["RATELIMIT_STORAGE_URI"] == shared_limits_config.REDIS_URL

    guesses = [
        login(client_from(instance_a, f"198.51.100.{i}"), password=WRONG_PASSWORD).status_code
        for i in range(3)
    ]
    on_b = login(client_from(instance_b, "10.0.0.1"))

    assert guesses == [401, 401, 401]
    assert_rate_limited(on_b)
    keys = list(redis_db.scan_iter(match=f"*{shared_limits_config.RATELIMIT_KEY_PREFIX}*"))
    assert keys
    # The email is hashed before it becomes part of a key.
    assert not any(b"alice" in key for key in keys)


def test_without_redis_each_instance_counts_alone(make_app, auth):
    # The control: the same attack against two memory-backed instances is not shared.
    auth.signup()
    instance_a = make_app(MemoryLimitsConfig)
    instance_b = make_app(MemoryLimitsConfig)

    guesses = [
        login(client_from(instance_a, f"198.51.100.{i}"), password=WRONG_PASSWORD).status_code
        for i in range(3)
    ]
    blocked_on_a = login(client_from(instance_a, "10.0.0.1"))
    on_b = login(client_from(instance_b, "10.0.0.1"))

    assert guesses == [401, 401, 401]
    assert_rate_limited(blocked_on_a)
    assert on_b.status_code == 200


class MemoryLoginLimitConfig(TestingConfig):
    RATELIMIT_LOGIN_PER_IP = "2 per minute"


def test_apps_in_one_process_count_on_their_own_storages(
    make_app, auth, redis_db, redis_limits_config
):
    # One module-level flask-limiter served every app of the process, its state swapped
    # in when an app context was pushed: a request that found its app's context already
    # pushed (a script, a multi-app server) counted on whichever app came last.
    auth.signup()
    in_memory = make_app(MemoryLoginLimitConfig)
    on_redis = make_app(redis_limits_config(RATELIMIT_LOGIN_PER_IP="2 per minute"))
    other_prefix = make_app(redis_limits_config(RATELIMIT_LOGIN_PER_IP="2 per minute"))

    with in_memory.app_context():
        on_redis_answers = [login(client_from(on_redis, "198.51.100.1")) for _ in range(3)]
        in_memory_answers = [login(client_from(in_memory, "198.51.100.1")) for _ in range(3)]
        other_prefix_answer = login(client_from(other_prefix, "198.51.100.1"))

    for answers in (on_redis_answers, in_memory_answers):
        assert [answer.status_code for answer in answers[:2]] == [200, 200]
        assert_rate_limited(answers[2])
    assert other_prefix_answer.status_code == 200
    for config in (on_redis, other_prefix):
        prefix = config.config["RATELIMIT_KEY_PREFIX"]
        assert list(redis_db.scan_iter(match=f"*{prefix}/198.51.100.1/auth.login:login-ip/*"))


# --- Redis down: refuse, never count per process ----------------------------------------


class RedisDownConfig(TestingConfig):
    """Shared counters configured, but nothing listens there (port 1 refuses at once)."""

    REDIS_URL = "redis://127.0.0.1:1/14"
    RATELIMIT_LOGIN_PER_IP = "20 per minute"


def assert_limits_unavailable(response) -> None:
    assert_error(response, 503, "rate_limit_unavailable")
    assert response.headers["Retry-After"] == "5"


def test_with_redis_down_no_login_gets_through(make_app, auth, in_db):
    # The per-process fallback let most of these through: 20 per minute per worker.
    auth.signup()
    down = client_from(make_app(RedisDownConfig), "198.51.100.1")

    answers = [login(down) for _ in range(25)]

    for answer in answers:
        assert_limits_unavailable(answer)
    assert row_count(in_db, RefreshToken) == 0


@pytest.mark.parametrize(
    "method, path, body",
    [
        (
            "post",
            "/auth/signup",
            {"email": "bob@example.com", "username": "bob", "password": "correct horse battery"},
        ),
        ("post", "/auth/forgot-password", {"email": "alice@example.com"}),
        ("post", "/auth/verify-email/resend", None),
        (
            "put",
            "/auth/change-password",
            {"current_password": WRONG_PASSWORD, "new_password": "a completely new passphrase"},
        ),
        ("delete", "/users/me", {"password": WRONG_PASSWORD}),
    ],
)
def test_with_redis_down_limited_endpoints_fail_closed(
    make_app, alice_tokens, in_db, method, path, body
):
    down = client_from(make_app(RedisDownConfig), "198.51.100.1")
    headers = bearer(alice_tokens["access_token"])

    answer = getattr(down, method)(path, json=body, headers=headers)

    assert_limits_unavailable(answer)
    assert row_count(in_db, User) == 1
    # Endpoints without a limit keep working: only counting is unavailable.
    assert down.get("/auth/me", headers=headers).status_code == 200


def test_with_redis_down_refresh_and_csrf_go_on_uncounted(make_app, alice_tokens, in_db):
    # Refresh tokens cannot be guessed (and are rotated, reuse revoking the family):
    # refusing them while Redis is down would log every browser out.
    down = client_from(make_app(RedisDownConfig), "198.51.100.1")
    down.set_cookie("refresh_token_cookie", alice_tokens["refresh_token"], path="/auth")

    csrf = down.get("/auth/csrf")
    refreshed = down.post("/auth/refresh", json={"refresh_token": alice_tokens["refresh_token"]})
    logged_in = login(down)

    assert csrf.status_code == 200 and csrf.json["csrf_token"]
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["refresh_token"] != alice_tokens["refresh_token"]
    assert_limits_unavailable(logged_in)
    assert row_count(in_db, RefreshToken) == 2  # alice's login, and its rotation


@pytest.fixture
def hung_redis():
    """The URL of a Redis that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # the loop checks ``stop`` that often
    held = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    server.close()
    for connection in held:
        connection.close()


def test_a_hung_redis_gives_up_after_the_storage_timeout(make_app, auth, hung_redis):
    # redis-py's default of 5 s held every limited request, and its worker, that long.
    auth.signup()
    hung = make_app(type("HungRedisConfig", (TestingConfig,), {"REDIS_URL": hung_redis}))

    options = counters(hung).storage.storage.connection_pool.connection_kwargs
    assert hung.config["RATELIMIT_STORAGE_TIMEOUT"] == 0.5
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (0.5, 0.5)
    assert_limits_unavailable(login(client_from(hung, "198.51.100.1")))
