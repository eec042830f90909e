"""Redis for the tests whose rate-limit counters are shared (test_redis_limits.py,
test_password_limits.py).

Needs Redis on 127.0.0.1:6379 (database 14 unless TEST_REDIS_URL names another; only
this run's keys are touched). CI guarantees it: with CI set an unreachable Redis fails
these tests; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from config import TestingConfig
from helpers import unavailable

# TEST_REDIS_URL: another database, for runs that share the Redis server.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
RUN_PREFIX = f"auth_service_test_{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
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
def redis_limits_config(redis_db):
    """Config classes whose counters live in Redis under a prefix of this test's own:
    ``redis_limits_config(RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT="3 per minute")``."""
    prefixes = []

    def build(**settings):
        prefix = f"{RUN_PREFIX}_{uuid.uuid4().hex[:12]}"
        prefixes.append(prefix)
        return type(
            "RedisLimitsConfig",
            (TestingConfig,),
            {"REDIS_URL": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix, **settings},
        )

    yield build
    for prefix in prefixes:
        for key in redis_db.scan_iter(match=f"*{prefix}*"):
            redis_db.delete(key)
