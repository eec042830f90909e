"""The audit trail: ``record`` a security event where its change happens (docs/audit.md).

An event joins the transaction of its change: ``record`` queues it in the session, and
the queue is appended to the hash chain (auth_service.persistence.audit_log) when that
transaction commits, and dropped when it rolls back. So a rolled-back change leaves no
event, and the chain's lock is held only while a transaction commits, after every
other lock it takes (no deadlock with the rows it changed).

Failures answered with an error (a wrong password: 401) roll their request back, so
``record_failure`` commits their event on its own (docs/adr/2401).

Each event carries the request's client IP, User-Agent and request id, its session, and
its actor: whose credentials made the request (a verified access token's account), so
that an action of a superuser on someone else's account names both.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import sqlalchemy as sa
from flask import Flask, current_app, g, has_request_context, request
from flask_jwt_extended import get_jwt

from auth_service.error_codes import Error
from auth_service.extensions import db
from auth_service.persistence import audit_log, transactions
from auth_service.persistence.models import AuditEvent, utcnow
from auth_service.security import limits

# The event types reachable today (docs/audit.md lists what each records).
SIGNUP = "signup"
LOGIN_SUCCEEDED = "login_succeeded"
LOGIN_FAILED = "login_failed"
MFA_CHALLENGE_FAILED = "mfa_challenge_failed"
LOGOUT = "logout"
LOGOUT_ALL = "logout_all"
SESSION_REVOKED = "session_revoked"
REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
PASSWORD_CHANGED = "password_changed"
PASSWORD_RESET_REQUESTED = "password_reset_requested"
PASSWORD_RESET = "password_reset"
EMAIL_VERIFIED = "email_verified"
IDENTITY_LINKED = "identity_linked"
IDENTITY_UNLINKED = "identity_unlinked"
MFA_ENABLED = "mfa_enabled"
MFA_DISABLED = "mfa_disabled"
RECOVERY_CODE_USED = "recovery_code_used"
PASSKEY_ADDED = "passkey_added"
PASSKEY_REMOVED = "passkey_removed"
ACCOUNT_DELETED = "account_deleted"
USER_ACTIVATED = "user_activated"
USER_DEACTIVATED = "user_deactivated"
SUPERUSER_GRANTED = "superuser_granted"
SUPERUSER_REVOKED = "superuser_revoked"
SIGNING_KEY_ROTATED = "signing_key_rotated"
SIGNING_KEY_REVOKED = "signing_key_revoked"
# The 429 it records, by the error code's own name.
RATE_LIMITED = Error.RATE_LIMITED.code

# What GET /users/me/security-events shows an account of its own events: everything
# about the account but the rate limits (noise, and keys of other parties' budgets).
USER_VISIBLE = (
    SIGNUP,
    LOGIN_SUCCEEDED,
    LOGIN_FAILED,
    MFA_CHALLENGE_FAILED,
    LOGOUT,
    LOGOUT_ALL,
    SESSION_REVOKED,
    REFRESH_REUSE_DETECTED,
    PASSWORD_CHANGED,
    PASSWORD_RESET_REQUESTED,
    PASSWORD_RESET,
    EMAIL_VERIFIED,
    IDENTITY_LINKED,
    IDENTITY_UNLINKED,
    MFA_ENABLED,
    MFA_DISABLED,
    RECOVERY_CODE_USED,
    PASSKEY_ADDED,
    PASSKEY_REMOVED,
    USER_ACTIVATED,
    USER_DEACTIVATED,
    SUPERUSER_GRANTED,
    SUPERUSER_REVOKED,
)

# Seconds during which one limit key gives at most one rate_limited event.
RATE_LIMITED_SAMPLE = 60
# Session.info key of the events waiting for the commit.
PENDING = "auth_service.audit_events"
# app.extensions key of the function that gives the current request's id (the request
# log's, registered by auth_service.observability.request_log: a layer above this one).
REQUEST_ID_SOURCE = "auth_service.audit.request_id"

# app.extensions key of the functions called with every event as it is recorded, in its
# transaction (auth_service.services.alerts: an email is rendered then and sent after the
# commit, like every other).
LISTENERS = "auth_service.audit.listeners"


def record(
    type: str,
    user_id: int | None = None,
    *,
    actor_id: int | None = None,
    session_id: str | None = None,
    details: dict | None = None,
) -> None:
    """Record event ``type`` about account ``user_id`` in the current transaction.

    ``actor_id`` and ``session_id`` default to the account and session of the
    request's verified access token. ``details``: plain JSON values, never a password,
    token, code or secret.
    """
    event = _event(type, user_id, actor_id, session_id, details)
    session = db.session()
    if not session.in_transaction():
        # So that a rollback drops it even when nothing else has been written.
        session.begin()
    session.info.setdefault(PENDING, []).append(event)
    for listener in current_app.extensions.get(LISTENERS, ()):
        listener(event)


def record_failure(type: str, user_id: int | None = None, **kwargs) -> None:
    """Record the event of a failure the request answers with an error, and commit it
    alone: the request's work so far is rolled back first (it would be anyway), so that
    nothing else is committed with it (docs/adr/2401)."""
    db.session.rollback()
    record(type, user_id, **kwargs)
    transactions.commit_now()


def record_on(
    connection: sa.Connection,
    type: str,
    user_id: int | None = None,
    *,
    actor_id: int | None = None,
    details: dict | None = None,
) -> None:
    """Append event ``type`` now, in the transaction of ``connection``: for a change made
    on a connection of its own rather than the session (``flask keys``). Call it after
    the change's last write, so that the chain's lock is the last one taken."""
    audit_log.append(connection, [_event(type, user_id, actor_id, None, details)])


def email_key(normalized_email: str) -> str:
    """An address as events name it when no account has it: a keyed hash (SECRET_KEY),
    so the log can be searched for an address one knows but not read for addresses."""
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, b"audit-email:" + normalized_email.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def _event(type, user_id, actor_id, session_id, details) -> dict:
    event = {
        "occurred_at": utcnow(),
        "type": type,
        "user_id": user_id,
        "actor_id": actor_id,
        "session_id": session_id,
        "ip": None,
        "user_agent": None,
        "request_id": None,
        "details": details or None,
    }
    if has_request_context():
        claims = _verified_claims()
        if actor_id is None and claims.get("sub", "").isdigit():
            event["actor_id"] = int(claims["sub"])
        if session_id is None:
            event["session_id"] = claims.get("sid")
        source: Callable[[], str] | None = current_app.extensions.get(REQUEST_ID_SOURCE)
        # PostgreSQL cannot store NUL characters, and a client chooses its User-Agent.
        user_agent = request.headers.get("User-Agent", "").replace("\x00", "")
        event.update(
            ip=(request.remote_addr or "")[:45] or None,
            user_agent=user_agent[:255] or None,
            request_id=source() if source else g.get("request_id"),
        )
    return event


def _verified_claims() -> dict:
    try:
        return get_jwt()
    except RuntimeError:  # flask-jwt-extended: no token was verified in this request
        return {}


def _append_pending(session: sa.orm.Session) -> None:
    events = session.info.pop(PENDING, None)
    if events:
        # Every other write first: the chain's lock is then the last one the transaction
        # takes, and it never waits for a row while holding it.
        session.flush()
        audit_log.append(session.connection(), events)


def _drop_pending(session: sa.orm.Session) -> None:
    session.info.pop(PENDING, None)


def _rate_limited(limit: str, key: str, user_id: int | None) -> None:
    """rate_limited, sampled: at most one event per limit key per minute, counted on the
    limits' own storage (shared by every instance through Redis)."""
    prefix = current_app.config["RATELIMIT_KEY_PREFIX"]
    if limits.counters().storage.incr(f"{prefix}audit-sample/{key}", RATE_LIMITED_SAMPLE) == 1:
        record_failure(RATE_LIMITED, user_id, details={"limit": limit})


# --- reading -----------------------------------------------------------------------------


def page(
    *,
    user_id: int | None = None,
    types: tuple[str, ...] | None = None,
    since=None,
    until=None,
    cursor: int | None = None,
    limit: int = 50,
) -> dict:
    """Events newest first, ``limit`` at a time: ``{"events", "next_cursor"}``.

    Keyset on the id: the cursor is the last id handed out, and the next page holds
    smaller ids only, so events recorded meanwhile never shift or repeat a page.
    """
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if types is not None:
        query = query.where(AuditEvent.type.in_(types))
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    if cursor is not None:
        query = query.where(AuditEvent.id < cursor)
    events = db.session.scalars(query).all()
    more = len(events) > limit
    events = events[:limit]
    return {"events": events, "next_cursor": str(events[-1].id) if more else None}


def listen(app: Flask, listener: Callable[[dict], None]) -> None:
    """Call ``listener(event)`` with every event ``app`` records, as it is recorded."""
    listeners = app.extensions.setdefault(LISTENERS, [])
    if listener not in listeners:
        listeners.append(listener)


def init_app(app: Flask) -> None:
    """Append the queued events when their transaction commits, drop them on a rollback."""
    for event, listener in (("before_commit", _append_pending), ("after_rollback", _drop_pending)):
        if not sa.event.contains(db.session, event, listener):
            sa.event.listen(db.session, event, listener)
    app.extensions[limits.EXCEEDED_LISTENER] = _rate_limited
