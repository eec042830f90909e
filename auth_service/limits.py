"""Rate limits (flask-limiter), keyed by client IP and by account.

Login is limited three ways (OWASP authentication cheat sheet): every attempt
per client IP (password spraying), *failed* attempts per account and IP (a
throttle that only slows the attacker's address), and failed attempts per
account from anywhere (distributed guessing) with a window short enough that
an attack cannot lock the real user out for long. Requests that send email
(verification resend, forgot-password) are limited per IP and per account.
The client IP is ``request.remote_addr``, which only ProxyFix (TRUSTED_PROXIES)
may rewrite; a raw X-Forwarded-For is never read.
"""

from __future__ import annotations

import hashlib

from flask import appcontext_pushed, current_app, request
from flask_jwt_extended import get_jwt_identity
from flask_limiter.util import get_remote_address

from auth_service.addresses import canonical_or_none
from auth_service.extensions import limiter


def _setting(name: str):
    """A limit string read from the config at request time (so tests and operators can change it)."""
    return lambda: current_app.config[name]


def _account() -> str:
    """The account a login or forgot-password names, hashed so emails never reach the limiter."""
    body = request.get_json(silent=True)
    # Every spelling of one address counts against one account; what has no canonical
    # form (the request is refused with a 422) shares one key.
    canonical = canonical_or_none(body.get("email") if isinstance(body, dict) else None) or ""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _account_and_ip() -> str:
    return f"{_account()}@{get_remote_address()}"


def _failed(response) -> bool:
    """Only failed credentials count against an account (a 429 or 422 is not a guess)."""
    return response.status_code == 401


per_ip = {"key_func": get_remote_address}

login_limits = [
    limiter.limit(_setting("RATELIMIT_LOGIN_PER_IP"), scope="login-ip", **per_ip),
    limiter.limit(_setting("RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP"), scope="login-account-ip",
                  key_func=_account_and_ip, deduct_when=_failed),
    limiter.limit(_setting("RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT"), scope="login-account",
                  key_func=_account, deduct_when=_failed),
]
signup_limit = limiter.limit(_setting("RATELIMIT_SIGNUP"), scope="signup", **per_ip)
refresh_limit = limiter.limit(_setting("RATELIMIT_REFRESH"), scope="refresh", **per_ip)
password_change_limit = limiter.limit(_setting("RATELIMIT_PASSWORD_CHANGE"),
                                      scope="password-change", **per_ip)


def limit_login(fn):
    """Apply the three login limits."""
    for limit in login_limits:
        fn = limit(fn)
    return fn


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
    """Use Redis when REDIS_URL is set, so every instance shares the counters."""
    if app.config.get("REDIS_URL") and app.config["RATELIMIT_STORAGE_URI"] == "memory://":
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
    limiter.__dict__ = dict(_UNCONFIGURED_STATE,
                            _storage_options=dict(_UNCONFIGURED_STATE["_storage_options"]))
    limiter.init_app(app)
    app.extensions["limiter_state"] = limiter.__dict__
