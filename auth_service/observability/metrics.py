"""The Prometheus metrics, and the one-line functions the code counts with.

Like extensions.py this module creates objects and imports nothing from the package but
the error table, so any layer may count (the architecture test places it with extensions.py; ADR 2405).
The metrics are served at ``/metrics`` by auth_service.observability.metrics_endpoint.

Every label holds a value from a fixed set: a Flask endpoint name, a method, a status,
or one of the tuples below. Never a path, a user id, an email or a token, so the
number of series stays bounded whatever clients send. Under gunicorn each worker
counts into files of its own (prometheus-client's multiprocess mode, set up by
gunicorn.conf.py) and ``/metrics`` sums them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from auth_service.error_codes import Error

PREFIX = "auth_service"

# In multiprocess mode every process writes files there from its first metric on: a
# process started before gunicorn made the directory (the entrypoint's `flask db
# upgrade`, a CLI command) would fail at import.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)

# A refused login counts under the code of its 429; "mfa_challenge": the password was
# right and the answer is the second step's mfa token.
LOGIN_RESULTS = (
    "success",
    "mfa_challenge",
    "wrong_password",
    "unknown_account",
    "inactive",
    Error.RATE_LIMITED.code,
)
REFRESH_RESULTS = ("rotated", "grace", "reused", "revoked", "expired", "invalid")
EMAIL_RESULTS = ("sent", "failed")
HASH_OPERATIONS = ("hash", "verify")
# Methods a route of this app answers; anything else a client invents is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The endpoint of a request that matched no route (404, 405).
UNMATCHED = "unmatched"

# From a fast /healthz to a request that waited for a hashing slot or a slow database.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# argon2id at the configured parameters takes tens of milliseconds a hash.
HASH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "Requests answered, by Flask endpoint, method and status.",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time the app took to answer, by Flask endpoint and status.",
    ["endpoint", "status"],
    buckets=REQUEST_BUCKETS,
)
LOGINS = Counter(f"{PREFIX}_logins", "Password logins (POST /auth/login), by result.", ["result"])
REFRESHES = Counter(
    f"{PREFIX}_refreshes",
    "Refresh token presentations (POST /auth/refresh), by result.",
    ["result"],
)
EMAILS = Counter(f"{PREFIX}_emails", "Emails handed to the SMTP server, by result.", ["result"])
RATE_LIMITED = Counter(
    f"{PREFIX}_rate_limited", "Requests refused by a rate limit, by limit.", ["limit"]
)
PASSWORD_HASH_SECONDS = Histogram(
    f"{PREFIX}_password_hash_seconds",
    "Time of one argon2id hash or verification (after waiting for a hashing slot).",
    ["operation"],
    buckets=HASH_BUCKETS,
)
DATABASE_ERRORS = Counter(
    f"{PREFIX}_database_errors",
    "Requests answered 503 because the database failed, by SQLAlchemy error class.",
    ["error"],
)

# Every series of a fixed set exists from the start at 0, so that rate() and absent()
# see a result that has not happened yet.
for _result in LOGIN_RESULTS:
    LOGINS.labels(_result)
for _result in REFRESH_RESULTS:
    REFRESHES.labels(_result)
for _result in EMAIL_RESULTS:
    EMAILS.labels(_result)


def _checked(value: str, allowed: tuple[str, ...]) -> str:
    """``value`` when it is one of ``allowed``: a typo at a call site fails its test
    instead of creating a series nobody alerts on."""
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return value


def request(endpoint: str | None, method: str, status: int, seconds: float | None) -> None:
    """Count an answered request (and its duration, when it was timed)."""
    endpoint = endpoint or UNMATCHED
    status_label = str(status)
    REQUESTS.labels(endpoint, method if method in METHODS else "other", status_label).inc()
    if seconds is not None:
        REQUEST_SECONDS.labels(endpoint, status_label).observe(seconds)


def login(result: str) -> None:
    """Count a password login's outcome (LOGIN_RESULTS)."""
    LOGINS.labels(_checked(result, LOGIN_RESULTS)).inc()


def refresh(result: str) -> None:
    """Count a refresh's outcome (REFRESH_RESULTS)."""
    REFRESHES.labels(_checked(result, REFRESH_RESULTS)).inc()


def email(sent: bool) -> None:
    """Count an email the SMTP server took (``sent``) or that was given up."""
    EMAILS.labels("sent" if sent else "failed").inc()


def rate_limited(limit: str) -> None:
    """Count a request refused by ``limit``: a name from the code (a limit's scope or a
    failure budget's setting), never anything the client sent."""
    RATE_LIMITED.labels(limit).inc()


@contextmanager
def password_hashing(operation: str) -> Iterator[None]:
    """Time the argon2id work of the block (HASH_OPERATIONS)."""
    histogram = PASSWORD_HASH_SECONDS.labels(_checked(operation, HASH_OPERATIONS))
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def database_error(error: BaseException) -> None:
    """Count a request the database failed: by SQLAlchemy's exception class (PEP 249's
    few: OperationalError, ProgrammingError, ...), never the driver's message."""
    DATABASE_ERRORS.labels(type(error).__name__).inc()
