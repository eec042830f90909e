"""Rotation: a refresh spends the presented token and issues its child, with reuse
detection and the grace window.

The family keeps exactly one live token. Presenting a spent token after the grace
window means it was copied: the whole session dies. How a rotation is ordered against
a revocation: auth_service.services.sessions.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import OperationalError

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.observability import metrics
from auth_service.persistence import transactions
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import RefreshToken, Session, User, new_uuid, utcnow
from auth_service.services import audit
from auth_service.services.sessions import (
    REASON_REUSE,
    TokenPair,
    client_details,
    encode_pair,
    revoke_family,
)

SQLITE_LOCK_RETRIES = 5
# A chain longer than this inside one grace window is not two racing tabs.
MAX_GRACE_HOPS = 5


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
        **client_details(),
    )


def _rotate_once(user_id: int, version: int, token: RefreshToken) -> TokenPair:
    jti = token.jti
    if token.spent_at is None:
        child = _child(token.family_id, user_id, token.expires_at)
        pair = encode_pair(user_id, version, child, token.session)
        if _spend(jti, child, version):
            metrics.refresh("rotated")
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
        answer = encode_pair(user_id, version, live, token.session)
        if _claim_grace(jti, now):
            metrics.refresh("grace")
            return answer
    if not revoke_family(family_id, REASON_REUSE):
        db.session.rollback()  # revoked (or deleted) meanwhile: not a reuse
        raise _revoked()
    audit.record(audit.REFRESH_REUSE_DETECTED, user_id, session_id=family_id)
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
