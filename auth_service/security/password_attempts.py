"""Failure budgets shared by every endpoint that checks a password or a second factor.

Login, change-password and account deletion (and any later password check), and every
check of a TOTP or recovery code, spend the same budgets: per client network, per account and client network, and per account --
or, for a browser presenting the account's device cookie (auth_service.security.devices), per
device instead of per account -- and the account's ceiling, which no device escapes. An
account is ``user:<id>`` once it is known, whether the request named it by email or by
access token; an email with no account is its digest.

An attempt takes a slot of every budget *before* the hash is checked, with the
storage's atomic increment: of N parallel attempts only those that drew a count
within the limit go on to verify. A right password of an active account gives its
slots back, so only failures stay counted (docs/adr/0301-password-attempt-limits.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import current_app
from limits import RateLimitItem, parse_many

from auth_service.errors import rate_limited
from auth_service.observability import metrics
from auth_service.persistence.models import User
from auth_service.security import devices
from auth_service.security.limits import client_network, counters, email_digest, report_exceeded
from auth_service.security.passwords import verify_password

NAMESPACE = "password-failures"

Slot = tuple[RateLimitItem, str]


def _budgets(user: User | None, email: str | None) -> list[tuple[str, str]]:
    """(setting, identifier) of every budget an attempt on this account spends."""
    account = f"user:{user.id}" if user is not None else f"email:{email_digest(email or '')}"
    network = client_network()
    device = devices.presented_device(user)
    own = (
        ("RATELIMIT_LOGIN_FAILURES_PER_DEVICE", f"device:{device}")
        if device
        else ("RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT", account)
    )
    # Last: an attempt refused by an earlier budget takes no slot of the ceiling.
    return [
        ("RATELIMIT_LOGIN_FAILURES_PER_IP", f"ip:{network}"),
        ("RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP", f"{account}@{network}"),
        own,
        ("RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CEILING", f"ceiling:{account}"),
    ]


def budget_name(setting: str) -> str:
    """A budget as the metrics name it: RATELIMIT_LOGIN_FAILURES_PER_IP -> login-failures-per-ip."""
    return setting.removeprefix("RATELIMIT_").lower().replace("_", "-")


def _give_back(slots: list[Slot]) -> None:
    for item, key in slots:
        counters().storage.incr(key, item.get_expiry(), amount=-1)


def _take_slots(budgets: list[tuple[str, str]], user_id: int | None) -> list[Slot]:
    """One slot of every budget, or a 429 (and the slots taken so far given back)."""
    storage = counters().storage
    prefix = current_app.config["RATELIMIT_KEY_PREFIX"]
    taken: list[Slot] = []
    for setting, identifier in budgets:
        for item in parse_many(current_app.config[setting]):
            key = item.key_for(prefix, NAMESPACE, identifier)
            if storage.incr(key, item.get_expiry()) > item.amount:
                # The spent budget keeps the extra count: its window ends when it would
                # have anyway.
                _give_back(taken)
                metrics.rate_limited(budget_name(setting))
                report_exceeded(setting, key, user_id)
                raise rate_limited(storage.get_expiry(key) - time.time())
            taken.append((item, key))
    return taken


def check_password(user: User | None, password: str, email: str | None = None) -> bool:
    """``verify_password`` for ``user`` under the shared failure budgets.

    For a login naming an email with no account, ``user`` is None and ``email`` (its
    normalised form) names the account; a dummy hash is verified as usual. Raises the
    429 before any hashing when a budget is spent.
    """
    password_hash = user.password_hash if user is not None else None
    return _within_budgets(user, email, lambda: verify_password(password_hash, password))


def check_second_factor(user: User, verify: Callable[[], bool]) -> bool:
    """``verify()`` (a TOTP or recovery code check) under the same budgets as a password:
    a wrong code counts as a failed login of the account."""
    return _within_budgets(user, None, verify)


def check_passkey(user: User | None, credential_id: str, verify: Callable[[], bool]) -> bool:
    """``verify()`` (a passkey assertion signing in) under the same budgets as a password:
    of its account, or for a credential no account has, of the credential id as though it
    were an unknown email."""
    return _within_budgets(user, None if user is not None else f"passkey:{credential_id}", verify)


def _within_budgets(user: User | None, email: str | None, verify: Callable[[], bool]) -> bool:
    """``verify()`` once a slot of every budget is taken; the slots back if it passed."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return verify()
    slots = _take_slots(_budgets(user, email), user and user.id)
    valid = verify()
    # A deactivated account's login fails whatever the password: a refund would tell
    # the right one apart by the budget it leaves.
    if valid and user.is_active:
        _give_back(slots)
    return valid
