"""Known devices: a signed cookie that a browser earns by signing in to an account.

OWASP's answer to lock-outs: failed passwords from elsewhere must not keep the owner
out. A login that presents a valid device cookie for the account it names is not
subject to the account's failure limit, only to a failure limit of that device and
to the account's ceiling (auth_service.security.password_attempts), so a stolen cookie,
or many, buy no unlimited guessing. The cookie carries the account's token version:
a password change or reset, an identity link or a deactivation voids every cookie
issued before. It proves nothing else: it never replaces the password.
"""

from __future__ import annotations

import secrets

from flask import Response, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer

from auth_service.persistence.models import User

COOKIE_NAME = "auth_device"
# Sent to every /auth endpoint, where logins and password changes happen, and no further:
# DELETE /users/me spends the account's budget (docs/adr/0301).
COOKIE_PATH = "/auth"
SALT = "auth_service.device"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _max_age() -> int:
    return int(current_app.config["DEVICE_COOKIE_MAX_AGE"].total_seconds())


def presented_device(user: User | None) -> str | None:
    """The request's device id when its cookie is valid and was issued to ``user`` at
    its current token version."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw or user is None:
        return None
    try:
        data = _serializer().loads(raw, max_age=_max_age())
    except BadData:
        return None
    if (
        not isinstance(data, dict)
        or data.get("user") != user.id
        or data.get("ver") != user.token_version
    ):
        return None
    device = data.get("device")
    return device if isinstance(device, str) and device else None


def remember(response: Response, user: User) -> None:
    """Set (or renew) the device cookie after a successful sign-in to ``user``."""
    device = presented_device(user) or secrets.token_urlsafe(16)
    config = current_app.config
    response.set_cookie(
        COOKIE_NAME,
        _serializer().dumps({"user": user.id, "ver": user.token_version, "device": device}),
        max_age=_max_age(),
        path=COOKIE_PATH,
        domain=config["JWT_COOKIE_DOMAIN"],
        secure=config["JWT_COOKIE_SECURE"],
        httponly=True,
        samesite=config["JWT_COOKIE_SAMESITE"],
    )
