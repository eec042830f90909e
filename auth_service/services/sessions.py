"""Sessions and their token families: issue, rotate with reuse detection, revoke, list.

A login starts a session (a ``sessions`` row) and its first refresh token. Each refresh
spends the presented token and issues its child; the family keeps exactly one live
token. Presenting a spent token after the grace window means it was copied: the whole
session dies.

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
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa
from flask import current_app, request
from sqlalchemy.exc import OperationalError

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.persistence import transactions
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import RefreshToken, Session, User, new_uuid, utcnow
from auth_service.security import jwt_checks

# Why a token was revoked, recorded in refresh_tokens.revoked_reason.
REASON_LOGOUT = "logout"
REASON_LOGOUT_ALL = "logout_all"
REASON_REUSE = "reuse_detected"
REASON_PASSWORD = "password_changed"
REASON_DEACTIVATED = "deactivated"
REASON_SESSION_REVOKED = "session_revoked"
REASON_ACCOUNT_DELETED = "account_deleted"
REASON_IDENTITY_LINKED = "identity_linked"

SQLITE_LOCK_RETRIES = 5
# A chain longer than this inside one grace window is not two racing tabs.
MAX_GRACE_HOPS = 5


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


def _client() -> dict:
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


def encode_pair(user_id: int, version: int, token) -> TokenPair:
    """A fresh access token and the refresh token of ``token`` (a RefreshToken, or
    anything with its jti, family_id, created_at and expires_at) for user ``user_id``
    at token version ``version``."""
    csrf = csrf_value(token.family_id)
    return TokenPair(
        jwt_checks.issue_access_token(user_id, version, token.family_id),
        jwt_checks.issue_refresh_token(user_id, version, token, csrf),
        token.expires_at,
        csrf,
    )


def start_session(user: User, aal: str = "aal1") -> TokenPair:
    """Begin a new session for ``user`` with its first refresh token (not committed).

    The request commits the rows with whatever else its session holds (a changed
    password, a new account), before the pair reaches the client.
    """
    now = utcnow()
    client = _client()
    session = Session(
        id=new_uuid(),
        user_id=user.id,
        created_at=now,
        aal=aal,
        expires_at=now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        **client,
    )
    token = RefreshToken(
        jti=new_uuid(),
        family_id=session.id,
        user_id=user.id,
        created_at=now,
        expires_at=session.expires_at,
        **client,
    )
    db.session.add_all([session, token])
    return encode_pair(user.id, user.token_version, token)


def rotate(user: User, presented: RefreshToken) -> TokenPair:
    """Spend the presented refresh token and return its child (see module docstring).

    ``presented`` is its row as the revocation check read it in this request: the
    conditional writes decide, atomically, whether it is still unspent and its session
    live; only when they match nothing is the row read again to tell the grace window,
    reuse and revocation apart.
    """
    # Read now: a rollback on the way (a lost race, a SQLite retry) expires ``user``, and
    # a user deleted meanwhile could then no longer be loaded.
    user_id, version = user.id, user.token_version
    return _retrying_locks(lambda: _rotate_once(user_id, version, presented))


def _retrying_locks(write):
    """``write()``, again after a short backoff when SQLite was locked.

    SQLite serialises writers; a writer that waited past the busy timeout is
    retried instead of failing the refresh.
    """
    for attempt in range(SQLITE_LOCK_RETRIES):
        try:
            return write()
        except OperationalError as exc:
            db.session.rollback()
            if "locked" not in str(exc.orig) or attempt == SQLITE_LOCK_RETRIES - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _child(family_id: str, user_id: int, expires_at: datetime) -> SimpleNamespace:
    """The values of the token that replaces a spent one (its row is written by _spend)."""
    return SimpleNamespace(
        jti=new_uuid(),
        family_id=family_id,
        user_id=user_id,
        created_at=utcnow(),
        expires_at=expires_at,
        **_client(),
    )


def _rotate_once(user_id: int, version: int, token: RefreshToken) -> TokenPair:
    jti = token.jti
    if token.spent_at is None:
        child = _child(token.family_id, user_id, token.expires_at)
        pair = encode_pair(user_id, version, child)
        if _spend(jti, child, version):
            return pair
        # Revoked, deleted, or its owner changed meanwhile; or spent by a concurrent refresh.
        token = _fresh_row(jti)
        if token.spent_at is None:
            raise _revoked()
    now = utcnow()
    grace = timedelta(seconds=current_app.config["REFRESH_REUSE_GRACE_SECONDS"])
    # Read before any commit: the rows may be deleted with their account meanwhile.
    family_id = token.family_id
    live = _live_descendant(token, now, grace)
    if live is not None:
        answer = encode_pair(user_id, version, live)
        if _claim_grace(jti, now):
            return answer
    if not revoke_family(family_id, REASON_REUSE):
        db.session.rollback()  # revoked (or deleted) meanwhile: not a reuse
        raise _revoked()
    # Committed before the 401, which rolls the rest of the request back.
    transactions.commit_now()
    current_app.logger.warning(
        "refresh token reuse detected: session %s of user %s revoked", family_id, user_id
    )
    raise APIError(Error.TOKEN_REUSED)


def _revoked() -> APIError:
    return APIError(Error.TOKEN_REVOKED)


def _spend(jti: str, child: SimpleNamespace, version: int) -> bool:
    """Spend token ``jti`` and record ``child`` in its place, atomically.

    False when ``jti`` was already spent or revoked, is not of the child's session and
    owner, the session is revoked or expired, or the owner is inactive or past token
    version ``version``: the conditional updates are what let only one of several
    concurrent refreshes win, and what orders a rotation against a revocation (module
    docstring). The child inherits session, owner and expiry from the row spent. On
    PostgreSQL the three writes are one statement, a transaction of its own on the
    autocommit engine: one round trip instead of BEGIN, two UPDATEs, INSERT and COMMIT.
    """
    params = {
        "spent_jti": jti,
        "owner": child.user_id,
        "family": child.family_id,
        "version": version,
        **{f"new_{column}": getattr(child, column, None) for column in _OWN},
    }
    engine = autocommit_engine()  # the database's dialect, without opening a session
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return connection.execute(_TOUCH_SPEND_AND_RECORD, params).rowcount == 1
    for write in (_TOUCH, _SPEND):
        if db.session.execute(write, params).rowcount != 1:
            db.session.rollback()
            return False
    db.session.execute(_RECORD, params)
    # Atomic only as one transaction, committed inside _retrying_locks' retry.
    transactions.commit_now()
    return True


# The writes of a rotation, as Core statements built once (no unit of work to flush).
# The child's values are bound as new_<column>: a parameter named after a column would
# make SQLAlchemy add that column to the UPDATE's SET clause.
_TOKENS = RefreshToken.__table__
_SESSIONS = Session.__table__
_USERS = User.__table__
_COLUMNS = tuple(column.key for column in _TOKENS.columns)
_INHERITED = ("family_id", "user_id", "expires_at")
_OWN = tuple(column for column in _COLUMNS if column not in _INHERITED)
# The session row: locked, and refused when revoked or expired.
_TOUCH = (
    sa.update(_SESSIONS)
    .where(
        _SESSIONS.c.id == sa.bindparam("family"),
        _SESSIONS.c.user_id == sa.bindparam("owner"),
        _SESSIONS.c.revoked_at.is_(None),
        _SESSIONS.c.expires_at > sa.bindparam("new_created_at", type_=_SESSIONS.c.expires_at.type),
    )
    .values(refreshed_at=sa.bindparam("new_created_at"))
)
_SPEND = (
    sa.update(_TOKENS)
    .where(
        _TOKENS.c.jti == sa.bindparam("spent_jti"),
        _TOKENS.c.spent_at.is_(None),
        _TOKENS.c.revoked_at.is_(None),
        _TOKENS.c.user_id == sa.bindparam("owner"),
        _TOKENS.c.family_id == sa.bindparam("family"),
        sa.exists().where(
            _USERS.c.id == sa.bindparam("owner"),
            _USERS.c.is_active,
            _USERS.c.token_version == sa.bindparam("version"),
        ),
    )
    .values(spent_at=sa.bindparam("new_created_at"), replaced_by=sa.bindparam("new_jti"))
)


def _record_from(source, *where) -> sa.Insert:
    """INSERT of the child: its own values bound, the inherited ones from ``source``."""
    return sa.insert(_TOKENS).from_select(
        list(_COLUMNS),
        sa.select(
            *(
                source.c[key]
                if key in _INHERITED
                else sa.bindparam(f"new_{key}", type_=_TOKENS.c[key].type)
                for key in _COLUMNS
            )
        ).where(*where),
    )


# SQLite: after _TOUCH and _SPEND, in their transaction, from the row spent.
_RECORD = _record_from(_TOKENS, _TOKENS.c.jti == sa.bindparam("spent_jti"))
# PostgreSQL: WITH touched AS (UPDATE sessions ... RETURNING), spent AS (UPDATE
# refresh_tokens ... WHERE family_id IN touched RETURNING) INSERT ... SELECT ... FROM spent.
# The spend reads the session update's result, so it runs only once that update has the
# row lock and found the session live.
_TOUCHED = _TOUCH.returning(_SESSIONS.c.id).cte("touched")
_TOUCH_SPEND_AND_RECORD = _record_from(
    _SPEND.where(_TOKENS.c.family_id.in_(sa.select(_TOUCHED.c.id)))
    .returning(*(_TOKENS.c[key] for key in _INHERITED))
    .cte("spent")
)


def _fresh_row(jti: str) -> RefreshToken:
    """Re-read a token row and its session from the database (not the identity map); a
    401 when the token or its session is gone or revoked."""
    token = db.session.execute(
        sa.select(RefreshToken)
        .where(RefreshToken.jti == jti)
        .options(sa.orm.joinedload(RefreshToken.session))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None or token.session.revoked_at is not None:
        raise _revoked()
    return token


def _live_descendant(token: RefreshToken, now: datetime, grace: timedelta) -> RefreshToken | None:
    """The family's live token, if ``token`` was spent within the grace window."""
    for _ in range(MAX_GRACE_HOPS):
        if token.spent_at is None or now - token.spent_at > grace or token.replaced_by is None:
            return None
        token = db.session.get(RefreshToken, token.replaced_by)
        if token is None or token.revoked_at is not None:
            return None
        if token.is_live(now):
            return token
    return None


def _claim_grace(jti: str, now: datetime) -> bool:
    """Take the one answer the grace window gives spent token ``jti`` (two tabs refreshing
    at once); a second duplicate is reuse. Conditional, so two duplicates racing for it
    cannot both win."""
    claimed = (
        db.session.execute(
            sa.update(RefreshToken)
            .where(
                RefreshToken.jti == jti,
                RefreshToken.grace_used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(grace_used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )
    # Committed inside _retrying_locks, which retries a commit SQLite refuses while locked.
    transactions.commit_now()
    return claimed


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
