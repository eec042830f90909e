"""Known devices: a signed cookie that a browser earns by signing in to an account.

OWASP's answer to lock-outs: failed passwords from elsewhere must not keep the owner
out. A login that presents a valid device cookie for the account it names is not
subject to the account's failure limit, only to a failure limit of that device
(auth_service.security.password_attempts), so a stolen cookie buys no unlimited guessing.
The cookie proves nothing else: it never replaces the password.
"""

from __future__ import annotations

import secrets

from flask import Response, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer

COOKIE_NAME = "auth_device"
# Sent to every /auth endpoint, where logins and password checks happen, and no further.
COOKIE_PATH = "/auth"
SALT = "auth_service.device"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _max_age() -> int:
    return int(current_app.config["DEVICE_COOKIE_MAX_AGE"].total_seconds())


def presented_device(user_id: int | None) -> str | None:
    """The request's device id when its cookie is valid and was issued to ``user_id``."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw or user_id is None:
        return None
    try:
        data = _serializer().loads(raw, max_age=_max_age())
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("user") != user_id:
        return None
    device = data.get("device")
    return device if isinstance(device, str) and device else None


def remember(response: Response, user_id: int) -> None:
    """Set (or renew) the device cookie after a successful sign-in to ``user_id``."""
    device = presented_device(user_id) or secrets.token_urlsafe(16)
    config = current_app.config
    response.set_cookie(
        COOKIE_NAME, _serializer().dumps({"user": user_id, "device": device}),
        max_age=_max_age(), path=COOKIE_PATH, domain=config["JWT_COOKIE_DOMAIN"],
        secure=config["JWT_COOKIE_SECURE"], httponly=True,
        samesite=config["JWT_COOKIE_SAMESITE"],
    )
