"""With REDIS_URL set, every instance of the app counts on the same Redis counters.

Needs Redis on 127.0.0.1:6379 (database 15 is used and only this run's keys are
touched). CI guarantees it: with CI set an unreachable Redis fails these tests;
elsewhere they are skipped.
"""

from __future__ import annotations

import uuid

import pytest
import redis

from config import TestingConfig
from helpers import WRONG_PASSWORD, assert_rate_limited, client_from, login, unavailable

REDIS_URL = "redis://127.0.0.1:6379/15"
RUN_PREFIX = f"auth_service_test_{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def redis_db():
    """A connection to the test database of Redis; this run's keys are deleted at the end."""
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        connection.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {REDIS_URL} ({exc})", ".ci/run starts it")
    yield connection
    for key in connection.scan_iter(match=f"*{RUN_PREFIX}*"):
        connection.delete(key)
    connection.close()


@pytest.fixture
def shared_limits_config(redis_db):
    """A config whose counters live in Redis under a prefix of this test's own."""
    prefix = f"{RUN_PREFIX}_{uuid.uuid4().hex[:12]}"
    yield type("RedisLimitsConfig", (TestingConfig,), {
        "REDIS_URL": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": prefix,
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT": "3 per minute",
    })
    for key in redis_db.scan_iter(match=f"*{prefix}*"):
        redis_db.delete(key)


class MemoryLimitsConfig(TestingConfig):
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "3 per minute"


def test_failures_on_one_instance_count_on_another(make_app, auth, redis_db, shared_limits_config):
    auth.signup()
    instance_a = make_app(shared_limits_config)
    instance_b = make_app(shared_limits_config)
    assert instance_a.config["RATELIMIT_STORAGE_URI"] == REDIS_URL

    guesses = [login(client_from(instance_a, f"198.51.100.{i}"), password=WRONG_PASSWORD)
               .status_code for i in range(3)]
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

    guesses = [login(client_from(instance_a, f"198.51.100.{i}"), password=WRONG_PASSWORD)
               .status_code for i in range(3)]
    blocked_on_a = login(client_from(instance_a, "10.0.0.1"))
    on_b = login(client_from(instance_b, "10.0.0.1"))

    assert guesses == [401, 401, 401]
    assert_rate_limited(blocked_on_a)
    assert on_b.status_code == 200
