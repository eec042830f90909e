"""Signed, single-purpose tokens for the links in account emails, and the links.

A token is an itsdangerous ``URLSafeTimedSerializer`` string keyed by SECRET_KEY
(JWTs use JWT_SECRET_KEY, so neither kind loads as the other), with one salt per
purpose, so a reset token never verifies an email and vice versa. It carries
the user id and an HMAC *fingerprint* of the account state it may act on:

- ``verify-email``: the email address. It dies when the address changes; once the
  address is verified a second use only meets "already verified".
- ``reset-password``: the password hash and the email. Setting any password
  changes the hash, so the token works once (and dies with a later change too).

Nothing is stored server-side and the payload names no address. Tokens travel
only in emails: never log them (``redact`` for log lines that might hold one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import current_app
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.persistence.models import User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purpose:
    """What a token may do: its salt, lifetime setting and the state it is bound to."""

    name: str
    max_age_setting: str
    bound_to: tuple[str, ...]


VERIFY_EMAIL = Purpose("verify-email", "EMAIL_VERIFY_TOKEN_MAX_AGE", ("email",))
RESET_PASSWORD = Purpose(
    "reset-password", "PASSWORD_RESET_TOKEN_MAX_AGE", ("password_hash", "email")
)

_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+")


class MissingPublicURL(RuntimeError):
    """PUBLIC_BASE_URL is not configured, so no link to this API can be built."""


def _serializer(purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        current_app.config["SECRET_KEY"], salt=f"auth_service.{purpose.name}"
    )


def fingerprint(user: Any, purpose: Purpose) -> str:
    """A keyed digest of the account state the token is bound to (reveals nothing of it)."""
    key = current_app.config["SECRET_KEY"].encode()
    state = "\x00".join([purpose.name] + [getattr(user, f) or "" for f in purpose.bound_to])
    digest = hmac.new(key, state.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(user: Any, purpose: Purpose) -> str:
    """A token letting its holder do ``purpose`` for ``user`` until it expires or is spent."""
    return _serializer(purpose).dumps({"uid": user.id, "fp": fingerprint(user, purpose)})


def load_token(token: str, purpose: Purpose) -> User:
    """The active user a valid ``purpose`` token names; 400 ``token_expired``/``invalid_token``."""
    max_age = current_app.config[purpose.max_age_setting].total_seconds()
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise APIError(Error.LINK_EXPIRED) from None
    except BadData:
        raise APIError(Error.INVALID_LINK) from None
    uid, fp = (data.get("uid"), data.get("fp")) if isinstance(data, dict) else (None, None)
    if not isinstance(uid, int) or isinstance(uid, bool) or not isinstance(fp, str):
        raise APIError(Error.INVALID_LINK)
    user = db.session.get(User, uid)
    if (
        user is None
        or not user.is_active
        or not hmac.compare_digest(fp, fingerprint(user, purpose))
    ):
        raise APIError(Error.INVALID_LINK)
    return user


def api_link(path: str, **query: str) -> str:
    """An absolute link to this API: PUBLIC_BASE_URL + ``path``, never the request's host."""
    base = current_app.config["PUBLIC_BASE_URL"]
    if not base:
        raise MissingPublicURL("PUBLIC_BASE_URL is not set")
    return f"{base.rstrip('/')}{path}?{urlencode(query)}"


def frontend_link(path: str, fragment: dict[str, str] | None = None, **query: str) -> str | None:
    """FRONTEND_URL + ``path`` with ``query`` added (and ``fragment``, which browsers never
    send to a server), or None when there is no frontend."""
    base = current_app.config.get("FRONTEND_URL")
    if not base:
        return None
    parts = urlsplit(base)
    merged = parse_qsl(parts.query, keep_blank_values=True) + list(query.items())
    return urlunsplit(
        parts._replace(
            path=parts.path.rstrip("/") + path,
            query=urlencode(merged),
            fragment=urlencode(fragment) if fragment else parts.fragment,
        )
    )


def verify_email_link(token: str) -> str:
    """The link in a verification email: GET /auth/verify-email on this API."""
    return api_link("/auth/verify-email", token=token)


def reset_password_link(token: str) -> str:
    """The link in a reset email: the frontend's reset page, else this API's token check."""
    return frontend_link("/reset-password", token=token) or api_link(
        "/auth/reset-password", token=token
    )


def redact(text: str) -> str:
    """``text`` with every ``token=...`` value replaced (for request lines in logs)."""
    return _TOKEN_IN_TEXT.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Strip link tokens from a logger's records (werkzeug's request lines under make run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = redact(message), ()
        return True


def init_app(app) -> None:
    """Keep link tokens out of the development server's request log."""
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactTokens) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(RedactTokens())
