"""Sessions: start one, list them, revoke them (auth_service.services.rotation rotates).

A login starts a session (a ``sessions`` row) and its first refresh token; its refresh
tokens form the session's family.

Rotation and revocation meet on the session row. A rotation writes it (refreshed_at),
only while it is unrevoked, in the same statement or transaction that spends the token
and records the child; a revocation marks it. Under READ COMMITTED the later of the two
waits for the other's row lock and re-checks the row, so no child is born to a revoked
session; a child born just before a revocation dies with it, because every token, access
tokens included, is checked against its session (jwt_checks.is_revoked).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

import sqlalchemy as sa
from flask import current_app, g, request

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.persistence.models import RefreshToken, Session, User, new_uuid, utcnow
from auth_service.security import token_issuing
from auth_service.services import audit

# Why a token was revoked, recorded in refresh_tokens.revoked_reason.
REASON_LOGOUT = "logout"
REASON_LOGOUT_ALL = "logout_all"
REASON_REUSE = "reuse_detected"
REASON_PASSWORD = "password_changed"
REASON_DEACTIVATED = "deactivated"
REASON_SESSION_REVOKED = "session_revoked"
REASON_ACCOUNT_DELETED = "account_deleted"
REASON_IDENTITY_LINKED = "identity_linked"
REASON_MFA_ENABLED = "mfa_enabled"
REASON_ADMIN = "revoked_by_admin"
# How a session was proven (its amr, RFC 8176): a password; Google or GitHub ("fed" is
# ours: a provider does not tell us how it signed the user in); more than one factor.
PASSWORD = "pwd"
FEDERATED = "fed"
MULTIPLE_FACTORS = "mfa"


@dataclass
class TokenPair:
    """What a login or refresh hands back."""

    access_token: str
    refresh_token: str
    refresh_expires_at: datetime
    csrf: str  # the refresh token's CSRF double-submit value (csrf_value)

    @property
    def refresh_max_age(self) -> int:
        """Seconds the refresh cookie should live: the family's remaining lifetime."""
        return max(1, int((self.refresh_expires_at - utcnow()).total_seconds()))


def client_details() -> dict:
    """User agent and client IP of the current request, trimmed to the columns."""
    # PostgreSQL cannot store NUL characters, and a client chooses its User-Agent.
    user_agent = request.headers.get("User-Agent", "").replace("\x00", "")
    return {
        "user_agent": user_agent[:255] or None,
        "ip_address": (request.remote_addr or None) and request.remote_addr[:45],
    }


def csrf_value(family_id: str) -> str:
    """The CSRF double-submit value of a session, derived so it can be re-issued.

    One value per session, not per token: the tabs of a browser share the refresh
    cookie, and a rotation by one tab must not leave the others holding a stale value.
    """
    key = current_app.config["JWT_SECRET_KEY"].encode()
    digest = hmac.new(key, b"csrf:" + family_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def encode_pair(user_id: int, version: int, token, session: Session) -> TokenPair:
    """A fresh access token of ``session`` and the refresh token of ``token`` (a
    RefreshToken, or anything with its jti, family_id, created_at and expires_at) for
    user ``user_id`` at token version ``version``."""
    csrf = csrf_value(token.family_id)
    return TokenPair(
        token_issuing.issue_access_token(user_id, version, session),
        token_issuing.issue_refresh_token(user_id, version, token, csrf),
        token.expires_at,
        csrf,
    )


def start_session(
    user: User,
    methods: list[str],
    aal: str = "aal1",
    authenticated_at: datetime | None = None,
    event: str | None = audit.LOGIN_SUCCEEDED,
) -> TokenPair:
    """Begin a new session for ``user``, proven by ``methods`` (RFC 8176 ``amr`` values)
    at level ``aal``, with its first refresh token (not committed); recorded as ``event``
    (a sign-in, unless the caller says otherwise).

    The request commits the rows with whatever else its session holds (a changed
    password, a new account), before the pair reaches the client.
    """
    now = utcnow()
    client = client_details()
    session = Session(
        id=new_uuid(),
        user_id=user.id,
        created_at=now,
        aal=aal,
        amr=" ".join(methods),
        authenticated_at=authenticated_at or now,
        expires_at=now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        **client,
    )
    token = _new_token(session, now, client)
    db.session.add_all([session, token])
    # A login presents no token that would name its account: the request log asks here
    # (the id itself: the row is expired by the commit before the log line is written).
    g.session_started_for = user.id
    if event is not None:
        audit.record(
            event, user.id, session_id=session.id, details={"methods": methods, "aal": aal}
        )
    return encode_pair(user.id, user.token_version, token, session)


def session_started_for() -> int | None:
    """The account of the session this request started (a login), if it started one."""
    return g.get("session_started_for")


def _new_token(session: Session, now: datetime, client: dict) -> RefreshToken:
    """A new refresh token of ``session``, living as long as the session does."""
    return RefreshToken(
        jti=new_uuid(),
        family_id=session.id,
        user_id=session.user_id,
        created_at=now,
        expires_at=session.expires_at,
        **client,
    )


def hold_live_session(session_id: str, user_id: int) -> bool:
    """Lock session ``session_id`` of ``user_id`` until the commit, if it is live.

    A write, not a read: a revocation racing the caller's change then either waits for
    its commit or has already made this match nothing (SQLite: the write lock).
    """
    return (
        db.session.execute(
            sa.update(Session)
            .where(
                Session.id == session_id,
                Session.user_id == user_id,
                Session.revoked_at.is_(None),
                Session.expires_at > utcnow(),
            )
            .values(refreshed_at=Session.refreshed_at)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def revoke_family(family_id: str, reason: str) -> int:
    """Revoke one session and its tokens (not committed); 0 when it was not live."""
    return _revoke(Session.id == family_id, RefreshToken.family_id == family_id, reason)


def revoke_user_tokens(user_id: int, reason: str) -> int:
    """Revoke every session of a user and their tokens (not committed); how many sessions."""
    return _revoke(Session.user_id == user_id, RefreshToken.user_id == user_id, reason)


def revoke_other_sessions(user_id: int, keep: str, reason: str) -> int:
    """Revoke every session of a user but ``keep`` (not committed); how many sessions."""
    return _revoke(
        sa.and_(Session.user_id == user_id, Session.id != keep),
        sa.and_(RefreshToken.user_id == user_id, RefreshToken.family_id != keep),
        reason,
    )


def elevate(user: User, session: Session, methods: list[str]) -> TokenPair:
    """Raise live ``session`` to aal2 once the user has proven a second factor
    (``methods``), with a fresh pair (not committed); a 401 when the session has ended.

    The session's live refresh token is spent in favour of the new one, as a rotation
    would: presented again it is a duplicate or a reuse. The session row is written
    first, so a revocation racing the step-up is ordered as one racing a rotation.
    """
    now = utcnow()
    proven = list(dict.fromkeys([*session.methods, *methods, MULTIPLE_FACTORS]))
    raised = db.session.execute(
        sa.update(Session)
        .where(
            Session.id == session.id,
            Session.user_id == user.id,
            Session.revoked_at.is_(None),
            Session.expires_at > now,
        )
        .values(aal="aal2", amr=" ".join(proven), authenticated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if raised != 1:
        raise APIError(Error.TOKEN_REVOKED)
    token = _new_token(session, now, client_details())
    db.session.execute(
        sa.update(RefreshToken)
        .where(
            RefreshToken.family_id == session.id,
            RefreshToken.spent_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(spent_at=now, replaced_by=token.jti)
        .execution_options(synchronize_session=False)
    )
    db.session.add(token)
    # What the new access token says of the session, as the row now holds it.
    state = SimpleNamespace(
        id=session.id,
        aal="aal2",
        methods=proven,
        authenticated_at=now,
        created_at=session.created_at,
    )
    return encode_pair(user.id, user.token_version, token, state)


def _revoke(which_sessions, which_tokens, reason: str) -> int:
    """Mark the sessions first: that is what a concurrent rotation waits for (module
    docstring). The tokens are marked too, for the record of which died why."""
    now = utcnow()
    revoked = db.session.execute(
        sa.update(Session)
        .where(which_sessions, Session.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.execute(
        sa.update(RefreshToken)
        .where(which_tokens, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return revoked


def list_sessions(user: User) -> list[dict]:
    """The user's live sessions, most recently used first."""
    now = utcnow()
    rows = db.session.execute(
        sa.select(Session, RefreshToken)
        .join(
            RefreshToken,
            sa.and_(
                RefreshToken.family_id == Session.id,
                RefreshToken.spent_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            ),
        )
        .where(Session.user_id == user.id, Session.revoked_at.is_(None), Session.expires_at > now)
        .order_by(RefreshToken.created_at.desc())
    ).all()
    return [
        {
            "id": session.id,
            "created_at": session.created_at,
            "last_used_at": token.created_at,
            "expires_at": session.expires_at,
            # Where the session was last refreshed from.
            "user_agent": token.user_agent,
            "ip_address": token.ip_address,
        }
        for session, token in rows
    ]


def revoke_session(user: User, family_id: str) -> None:
    """Revoke one of the user's own sessions; anyone else's is a 404."""
    own = sa.and_(Session.id == family_id, Session.user_id == user.id)
    own_tokens = sa.and_(RefreshToken.family_id == family_id, RefreshToken.user_id == user.id)
    # A NUL in the path would make PostgreSQL reject the query (a 500); no id contains one.
    if "\x00" in family_id or not _revoke(own, own_tokens, REASON_SESSION_REVOKED):
        raise APIError(Error.SESSION_NOT_FOUND)
    audit.record(audit.SESSION_REVOKED, user.id, session_id=family_id)
