"""Rate limits, keyed by client network and by account, counted with ``limits``.

Every login attempt is limited per client network (password spraying); wrong
passwords, wherever a password is checked, spend the failure budgets of
auth_service.security.password_attempts. Requests that send email (verification resend,
forgot-password) are limited per client network and per account. The client
address is ``request.remote_addr``, which only ProxyFix (TRUSTED_PROXIES) may
rewrite; a raw X-Forwarded-For is never read. When the counters' storage is down,
the limits on guessable secrets (passwords, email addresses, signups) answer 503;
refresh, CSRF and provider logins go on uncounted (docs/adr/0301-password-attempt-limits.md).
Each app counts on a storage of its own (docs/adr/1601-rate-limits-without-flask-limiter.md).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlsplit

from flask import Flask, current_app, request
from flask_jwt_extended import get_jwt_identity
from limits import parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import STRATEGIES, RateLimiter

from auth_service.errors import rate_limited
from auth_service.observability import metrics
from auth_service.security.addresses import canonical_or_none

log = logging.getLogger(__name__)

# One IPv6 host is usually handed a whole /64: keyed by /128, it would have billions
# of budgets.
IPV6_CLIENT_PREFIX = 64
# Where init_app keeps an app's Counters.
EXTENSION = "rate_limits"
# app.extensions key of the function told of every refused request (the audit trail's:
# auth_service.services.audit, a layer above this one).
EXCEEDED_LISTENER = "rate_limits.exceeded"


def _without_port(raw: str) -> str:
    """``raw`` without a ``:port`` (``192.0.2.1:4711``, ``[2001:db8::1]:4711``), which
    some proxies append to X-Forwarded-For and ProxyFix passes on as the address."""
    if raw.startswith("["):
        return raw[1:].split("]", 1)[0]
    if raw.count(":") == 1:
        return raw.split(":", 1)[0]
    return raw


def client_network() -> str:
    """The client as every per-IP limit keys it: an IPv4 address, or an IPv6 /64.

    IPv6 addresses that carry an IPv4 address, mapped (``::ffff:192.0.2.1``, from a
    dual-stack socket) or 6to4 (``2002:c000:201::/48``), count as that IPv4 address.
    """
    raw = request.remote_addr or ""
    try:
        address = ipaddress.ip_address(_without_port(raw).split("%", 1)[0])
    except ValueError:
        return raw or "unknown"
    if address.version == 4:
        return str(address)
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is not None:
        return str(embedded)
    return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))


def email_digest(normalized_email: str) -> str:
    """An email as limit keys hold it: hashed, so addresses never reach the counters."""
    return hashlib.sha256(normalized_email.encode("utf-8", "replace")).hexdigest()[:32]


def _account() -> str:
    """The account a forgot-password request names."""
    body = request.get_json(silent=True)
    # Every spelling of one address counts against one account; what has no canonical
    # form (the request is refused with a 422) shares one key.
    return email_digest(
        canonical_or_none(body.get("email") if isinstance(body, dict) else None) or ""
    )


def _caller() -> str:
    """The account of the verified access token (the limit sits under access_required)."""
    return f"user:{get_jwt_identity()}"


@dataclass(frozen=True)
class Counters:
    """One app's counters: the storage (shared by every instance through Redis) and the
    RATELIMIT_STRATEGY counting on it."""

    storage: Storage
    strategy: RateLimiter


def counters(app: Flask | None = None) -> Counters:
    """The counters of ``app`` (by default the current one)."""
    return (app or current_app).extensions[EXTENSION]


def report_exceeded(limit: str, key: str, user_id: int | None = None) -> None:
    """Tell the app's listener that ``limit`` refused a request counted per ``key``."""
    listener = current_app.extensions.get(EXCEEDED_LISTENER)
    if listener is not None:
        listener(limit, key, user_id)


@dataclass(frozen=True)
class Limit:
    """The limit string in the setting ``setting``, counted per ``key()`` in ``scope`` of
    each endpoint it guards."""

    setting: str
    scope: str
    key: Callable[[], str] = client_network


def _count(limits: tuple[Limit, ...]) -> None:
    """Take a hit of every limit, or raise the 429 of the first one spent.

    The settings are read at request time, so tests and operators can change them.
    Shorter windows go first: a request refused per minute spends nothing per day.
    """
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    strategy = counters().strategy
    prefix = config["RATELIMIT_KEY_PREFIX"]
    rules = [(item, limit) for limit in limits for item in parse_many(config[limit.setting])]
    for item, limit in sorted(rules, key=lambda rule: rule[0]):
        # Each endpoint counts apart, in the keys flask-limiter wrote
        # (LIMITER/prefix/key/endpoint:scope/...), so counters survive the upgrade.
        scope = f"{request.endpoint}:{limit.scope}"
        identifiers = [prefix, limit.key(), scope] if prefix else [limit.key(), scope]
        if not strategy.hit(item, *identifiers):
            log.info("rate limit %s exceeded on %s", item, limit.scope)
            metrics.rate_limited(limit.scope)
            report_exceeded(limit.scope, "/".join(identifiers))
            reset_at = strategy.get_window_stats(item, *identifiers).reset_time
            raise rate_limited(reset_at - time.time())


def rate_limit(*limits: Limit, fail_open: bool = False):
    """Count every request to the view against ``limits`` before it runs.

    ``fail_open``: while the storage is down the request goes on uncounted, only for
    secrets nobody can guess: refresh tokens (rotated, reuse revokes the family) and
    OAuth state. Otherwise a storage error answers 503 (errors.py). A storage error
    raised by the view itself always propagates.
    """

    def decorate(view):
        @wraps(view)
        def limited(*args, **kwargs):
            try:
                _count(limits)
            except StorageError as exc:
                if not fail_open:
                    raise
                log.warning(
                    "rate-limit storage unavailable on %s %s, not counted: %s",
                    request.method,
                    request.path,
                    type(exc.storage_error).__name__,
                )
            return view(*args, **kwargs)

        # Read by the API document (auth_service.http.api_docs): a limited operation
        # documents its 429, and its 503 when it does not fail open.
        limited.rate_limit_fails_open = fail_open and getattr(view, "rate_limit_fails_open", True)
        return limited

    return decorate


# Wrong passwords are counted by auth_service.security.password_attempts, before the hash is
# checked; this limit counts every attempt, right or wrong.
login_limit = rate_limit(Limit("RATELIMIT_LOGIN_PER_IP", "login-ip"))
signup_limit = rate_limit(Limit("RATELIMIT_SIGNUP", "signup"))
oauth_limit = rate_limit(Limit("RATELIMIT_OAUTH", "oauth"), fail_open=True)
refresh_limit = rate_limit(Limit("RATELIMIT_REFRESH", "refresh"), fail_open=True)
password_change_limit = rate_limit(Limit("RATELIMIT_PASSWORD_CHANGE", "password-change"))

# Each email costs the mail server and lands in someone's inbox: a per-account limit
# stops mail-bombing one address, the per-IP one a sweep over many. The resend limits
# go under ``access_required``; forgot-password counts every requested address, existing
# or not.
limit_verify_resend = rate_limit(
    Limit("RATELIMIT_VERIFY_RESEND_PER_IP", "verify-resend-ip"),
    Limit("RATELIMIT_VERIFY_RESEND_PER_ACCOUNT", "verify-resend-account", _caller),
)
limit_forgot_password = rate_limit(
    Limit("RATELIMIT_FORGOT_PASSWORD_PER_IP", "forgot-password-ip"),
    Limit("RATELIMIT_FORGOT_PASSWORD_PER_ACCOUNT", "forgot-password-account", _account),
)


def init_app(app: Flask) -> None:
    """Give ``app`` counters of its own; Redis when REDIS_URL is set, so every instance
    shares them.

    Storage errors are raised as limits' StorageError whatever the storage, and
    errors.py answers them with 503 (or ``fail_open`` lets the request go on): a limit
    that cannot count is not silently multiplied by the number of worker processes.
    """
    if app.config.get("REDIS_URL") and app.config["RATELIMIT_STORAGE_URI"] == "memory://":
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
    uri = app.config["RATELIMIT_STORAGE_URI"]
    options = {"wrap_exceptions": True}
    if urlsplit(uri).scheme.startswith(("redis", "valkey")):
        # redis-py waits 5 s by default: a Redis that accepts and never answers would hold
        # every limited request, and the worker serving it, that long.
        timeout = app.config["RATELIMIT_STORAGE_TIMEOUT"]
        options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    storage = storage_from_string(uri, **options)
    strategy = STRATEGIES[app.config["RATELIMIT_STRATEGY"]](storage)
    app.extensions[EXTENSION] = Counters(storage, strategy)
