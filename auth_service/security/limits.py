"""Rate limits (flask-limiter), keyed by client network and by account.

Every login attempt is limited per client network (password spraying); wrong
passwords, wherever a password is checked, spend the failure budgets of
auth_service.security.password_attempts. Requests that send email (verification resend,
forgot-password) are limited per client network and per account. The client
address is ``request.remote_addr``, which only ProxyFix (TRUSTED_PROXIES) may
rewrite; a raw X-Forwarded-For is never read. When the counters' storage is down,
the limits on guessable secrets (passwords, email addresses, signups) answer 503;
refresh, CSRF and provider logins go on uncounted (docs/adr/0301-password-attempt-limits.md).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from functools import wraps
from urllib.parse import urlsplit

from flask import appcontext_pushed, current_app, request
from flask_jwt_extended import get_jwt_identity
from limits.errors import StorageError

from auth_service.security.addresses import canonical_or_none
from auth_service.extensions import limiter

log = logging.getLogger(__name__)

# One IPv6 host is usually handed a whole /64: keyed by /128, it would have billions
# of budgets.
IPV6_CLIENT_PREFIX = 64


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


def _setting(name: str):
    """A limit string read from the config at request time (so tests and operators can change it)."""
    return lambda: current_app.config[name]


def email_digest(normalized_email: str) -> str:
    """An email as limit keys hold it: hashed, so addresses never reach the counters."""
    return hashlib.sha256(normalized_email.encode("utf-8", "replace")).hexdigest()[:32]


def _account() -> str:
    """The account a forgot-password request names."""
    body = request.get_json(silent=True)
    # Every spelling of one address counts against one account; what has no canonical
    # form (the request is refused with a 422) shares one key.
    return email_digest(canonical_or_none(body.get("email") if isinstance(body, dict) else None)
                        or "")


def fail_open(limit):
    """``limit``, except that the request goes on uncounted while the storage is down.

    Only for secrets nobody can guess: refresh tokens (rotated, reuse revokes the
    family) and OAuth state. A storage error raised by the view itself still propagates.
    """

    def decorate(view):
        @wraps(view)
        def proceed(then, *args, **kwargs):
            return then()

        limited = limit(proceed)

        @wraps(view)
        def guarded(*args, **kwargs):
            entered = False

            def then():
                nonlocal entered
                entered = True
                return view(*args, **kwargs)

            try:
                return limited(then)
            except StorageError as exc:
                if entered:
                    raise
                log.warning("rate-limit storage unavailable on %s %s, not counted: %s",
                            request.method, request.path, type(exc.storage_error).__name__)
                return then()

        return guarded

    return decorate


per_ip = {"key_func": client_network}

# Wrong passwords are counted by auth_service.security.password_attempts, before the hash is
# checked; this limit counts every attempt, right or wrong.
login_limit = limiter.limit(_setting("RATELIMIT_LOGIN_PER_IP"), scope="login-ip", **per_ip)
signup_limit = limiter.limit(_setting("RATELIMIT_SIGNUP"), scope="signup", **per_ip)
oauth_limit = fail_open(limiter.limit(_setting("RATELIMIT_OAUTH"), scope="oauth", **per_ip))
refresh_limit = fail_open(limiter.limit(_setting("RATELIMIT_REFRESH"), scope="refresh", **per_ip))
password_change_limit = limiter.limit(_setting("RATELIMIT_PASSWORD_CHANGE"),
                                      scope="password-change", **per_ip)


def _caller() -> str:
    """The account of the verified access token (the limit sits under access_required)."""
    return f"user:{get_jwt_identity()}"


# Each email costs the mail server and lands in someone's inbox: a per-account limit
# stops mail-bombing one address, the per-IP one a sweep over many.
verify_resend_limits = [
    limiter.limit(_setting("RATELIMIT_VERIFY_RESEND_PER_IP"), scope="verify-resend-ip", **per_ip),
    limiter.limit(_setting("RATELIMIT_VERIFY_RESEND_PER_ACCOUNT"), scope="verify-resend-account",
                  key_func=_caller),
]
forgot_password_limits = [
    limiter.limit(_setting("RATELIMIT_FORGOT_PASSWORD_PER_IP"), scope="forgot-password-ip",
                  **per_ip),
    limiter.limit(_setting("RATELIMIT_FORGOT_PASSWORD_PER_ACCOUNT"),
                  scope="forgot-password-account", key_func=_account),
]


def limit_verify_resend(fn):
    """Resend limits per IP and per account; apply under ``access_required``."""
    for limit in verify_resend_limits:
        fn = limit(fn)
    return fn


def limit_forgot_password(fn):
    """Forgot-password limits per IP and per requested address (existing or not)."""
    for limit in forgot_password_limits:
        fn = limit(fn)
    return fn


# flask-limiter keeps its storage, key prefix and on/off switch on the Limiter
# object, and the first app's prefix and strategy stick. The object is shared by
# every app of the process (extensions.py), so a second create_app (the test
# suite, a script) would move the first app onto the second's storage and switch.
# Each app therefore gets its own copy of the limiter's state, swapped in when one
# of its contexts is pushed (every request pushes one). One app per process in
# production makes the swap a no-op there.
_UNCONFIGURED_STATE = dict(limiter.__dict__)


def _activate(app, **_) -> None:
    state = app.extensions.get("limiter_state")
    if state is not None and limiter.__dict__ is not state:
        limiter.__dict__ = state


appcontext_pushed.connect(_activate)


def init_app(app) -> None:
    """Use Redis when REDIS_URL is set, so every instance shares the counters.

    Storage errors are raised as limits' StorageError whatever the storage, and
    errors.py answers them with 503 (or ``fail_open`` lets the request go on): a limit
    that cannot count is not silently multiplied by the number of worker processes.
    """
    if app.config.get("REDIS_URL") and app.config["RATELIMIT_STORAGE_URI"] == "memory://":
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
    options = {**app.config.get("RATELIMIT_STORAGE_OPTIONS", {}), "wrap_exceptions": True}
    if urlsplit(app.config["RATELIMIT_STORAGE_URI"]).scheme.startswith(("redis", "valkey")):
        # redis-py waits 5 s by default: a Redis that accepts and never answers would hold
        # every limited request, and the worker serving it, that long.
        timeout = app.config["RATELIMIT_STORAGE_TIMEOUT"]
        options.setdefault("socket_timeout", timeout)
        options.setdefault("socket_connect_timeout", timeout)
    app.config["RATELIMIT_STORAGE_OPTIONS"] = options
    limiter.__dict__ = dict(_UNCONFIGURED_STATE,
                            _storage_options=dict(_UNCONFIGURED_STATE["_storage_options"]))
    limiter.init_app(app)
    app.extensions["limiter_state"] = limiter.__dict__
