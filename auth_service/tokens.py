"""Token families: issue, rotate with reuse detection, revoke, list sessions.

A login starts a *family* (a session). Each refresh spends the presented token
and issues its child; the family keeps exactly one live token. Presenting a
spent token after the grace window means it was copied: the whole family dies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import sqlalchemy as sa
from flask import current_app, g, request
from sqlalchemy.exc import OperationalError

from auth_service import jwt_checks
from auth_service.engines import Prepared, autocommit_engine
from auth_service.errors import APIError
from auth_service.extensions import db
from auth_service.models import RefreshToken, User, UTCDateTime, new_uuid, utcnow

# Why a token was revoked, recorded in refresh_tokens.revoked_reason.
REASON_LOGOUT = "logout"
REASON_LOGOUT_ALL = "logout_all"
REASON_REUSE = "reuse_detected"
REASON_PASSWORD = "password_changed"
REASON_DEACTIVATED = "deactivated"
REASON_SESSION_REVOKED = "session_revoked"
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
    """Encode a fresh access token and the refresh JWT of ``token`` (a RefreshToken, or
    anything with its jti, family_id, created_at and expires_at) for user ``user_id``
    at token version ``version``.

    The refresh JWT depends only on the row, so a duplicate refresh inside the
    grace window receives the very same token as the first one.
    """
    claims = {"sid": token.family_id, "ver": version}
    issued = int(token.created_at.timestamp())
    csrf = csrf_value(token.family_id)
    subject = str(user_id)
    refresh = jwt_checks.encode("refresh", subject, claims | {
        "jti": token.jti,
        "iat": issued,
        "nbf": issued,
        "exp": int(token.expires_at.timestamp()),
        "csrf": csrf,
    })
    access = jwt_checks.encode("access", subject, claims)
    return TokenPair(access, refresh, token.expires_at, csrf)


def start_session(user: User, alone: bool = False) -> TokenPair:
    """Begin a new family for ``user`` and commit it.

    The row is committed with whatever else the request's session holds (a changed
    password, a new account). ``alone``: the caller has nothing else to commit (a
    login); on PostgreSQL the row is then one INSERT on the autocommit engine, without
    a unit of work, BEGIN and COMMIT.
    """
    now = utcnow()
    values = {"jti": new_uuid(), "family_id": new_uuid(), "user_id": user.id,
              "created_at": now,
              "expires_at": now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
              **_client()}
    engine = autocommit_engine()
    if alone and engine.dialect.name == "postgresql":
        pair = encode_pair(user.id, user.token_version, SimpleNamespace(**values))
        _INSERT.rowcount(engine, {column: values.get(column) for column in _COLUMNS})
        return pair
    token = RefreshToken(**values)
    db.session.add(token)
    # Encoded before the commit, which expires the objects: after it, reading them
    # would cost a SELECT of the user and of the token again.
    pair = encode_pair(user.id, user.token_version, token)
    db.session.commit()
    return pair


def rotate(user: User, jti: str) -> TokenPair:
    """Spend refresh token ``jti`` and return its child (see module docstring)."""
    return _retrying_locks(lambda: _rotate_once(user, jti))


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


def rotate_presented(claims: dict) -> TokenPair | None:
    """A refresh in one statement, from the verified claims of the presented token alone.

    The pair is encoded first (family, owner, version and expiry are in the claims);
    then the statement spends the token only if it is unspent and unrevoked and its
    owner is active at that token version, and records the child in its place. None
    when it spent nothing: revoked, reused, in the grace window, a deactivated or
    re-passworded owner, or a lost race. The caller then runs the full checks
    (jwt_checks.check_token, rotate), which tell those apart.
    """
    child = _child(family_id=claims["sid"], user_id=int(claims["sub"]),
                   expires_at=datetime.fromtimestamp(claims["exp"], timezone.utc))
    pair = encode_pair(child.user_id, claims["ver"], child)
    spent = _retrying_locks(lambda: _spend(claims["jti"], child, claims["ver"]))
    return pair if spent else None


def _child(family_id: str, user_id: int, expires_at: datetime) -> SimpleNamespace:
    """The values of the token that replaces a spent one (its row is written by _spend)."""
    return SimpleNamespace(jti=new_uuid(), family_id=family_id, user_id=user_id,
                           created_at=utcnow(), expires_at=expires_at, **_client())


def _rotate_once(user: User, jti: str) -> TokenPair:
    now = utcnow()
    # The row the revocation check just read (jwt_checks.is_revoked) gives the family
    # and its expiry, which never change: the conditional update below is what decides,
    # atomically, that the token is unspent and unrevoked. Only when it matches no row
    # is the row read again to tell the grace window, reuse and revocation apart.
    token, fresh = g.get("refresh_token_row"), False
    if token is None or token.jti != jti:
        token, fresh = _fresh_row(jti), True
    if token.spent_at is None:
        child = _child(token.family_id, user.id, token.expires_at)
        # Encoded first: the commit of a rotation on SQLite expires the user.
        pair = encode_pair(user.id, user.token_version, child)
        if _spend(jti, child, user.token_version):
            return pair
        token = _fresh_row(jti)  # spent, revoked or lost the race to a concurrent refresh
    elif not fresh:
        token = _fresh_row(jti)
    grace = timedelta(seconds=current_app.config["REFRESH_REUSE_GRACE_SECONDS"])
    live = _live_descendant(token, now, grace)
    if live is not None:
        return encode_pair(user.id, user.token_version, live)
    revoke_family(token.family_id, REASON_REUSE)
    db.session.commit()
    current_app.logger.warning("refresh token reuse detected: family %s of user %s revoked",
                               token.family_id, user.id)
    raise APIError(401, "token_reused", "This refresh token was already used; "
                   "the session has been revoked. Log in again.")


def _spend(jti: str, child: SimpleNamespace, version: int) -> bool:
    """Spend token ``jti`` and record ``child`` in its place, atomically.

    False when ``jti`` was already spent or revoked, is not of the child's family and
    owner, or the owner is inactive or past token version ``version``: the conditional
    update is what lets only one of several concurrent refreshes win. The child
    inherits family, owner and expiry from the row spent. On PostgreSQL both writes
    are one statement, a transaction of its own on the autocommit engine: one round
    trip instead of BEGIN, UPDATE, INSERT and COMMIT.
    """
    params = {"spent_jti": jti, "owner": child.user_id, "family": child.family_id,
              "version": version,
              **{f"new_{column}": getattr(child, column, None) for column in _OWN}}
    engine = autocommit_engine()  # the database's dialect, without opening a session
    if engine.dialect.name == "postgresql":
        return _SPEND_AND_RECORD.rowcount(engine, params) == 1
    if db.session.execute(_SPEND, params).rowcount != 1:
        db.session.rollback()
        return False
    db.session.execute(_RECORD, params)
    db.session.commit()
    return True


# The writes of a rotation, as Core statements built once (no unit of work to flush).
# The child's values are bound as new_<column>: a parameter named after a column would
# make SQLAlchemy add that column to the UPDATE's SET clause.
_TOKENS = RefreshToken.__table__
_USERS = User.__table__
_COLUMNS = tuple(column.key for column in _TOKENS.columns)
_INHERITED = ("family_id", "user_id", "expires_at")
_OWN = tuple(column for column in _COLUMNS if column not in _INHERITED)
_SPEND = (
    sa.update(_TOKENS)
    .where(_TOKENS.c.jti == sa.bindparam("spent_jti"), _TOKENS.c.spent_at.is_(None),
           _TOKENS.c.revoked_at.is_(None), _TOKENS.c.user_id == sa.bindparam("owner"),
           _TOKENS.c.family_id == sa.bindparam("family"),
           sa.exists().where(_USERS.c.id == sa.bindparam("owner"), _USERS.c.is_active,
                             _USERS.c.token_version == sa.bindparam("version")))
    .values(spent_at=sa.bindparam("new_created_at"), replaced_by=sa.bindparam("new_jti"))
)


def _record_from(source, *where) -> sa.Insert:
    """INSERT of the child: its own values bound, the inherited ones from ``source``."""
    return sa.insert(_TOKENS).from_select(
        list(_COLUMNS),
        sa.select(*(source.c[key] if key in _INHERITED
                    else sa.bindparam(f"new_{key}", type_=_TOKENS.c[key].type)
                    for key in _COLUMNS)).where(*where),
    )


# A new family's first token (start_session alone, on PostgreSQL).
_INSERT = Prepared(sa.insert(_TOKENS))
# SQLite: after _SPEND, in its transaction, from the row it spent.
_RECORD = _record_from(_TOKENS, _TOKENS.c.jti == sa.bindparam("spent_jti"))
# PostgreSQL: WITH spent AS (UPDATE ... RETURNING) INSERT ... SELECT ... FROM spent.
_SPEND_AND_RECORD = Prepared(_record_from(
    _SPEND.returning(*(_TOKENS.c[key] for key in _INHERITED)).cte("spent")))


def _fresh_row(jti: str) -> RefreshToken:
    """Re-read a token row from the database (not the identity map)."""
    token = db.session.execute(
        sa.select(RefreshToken).where(RefreshToken.jti == jti)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        raise APIError(401, "token_revoked", "The token has been revoked.")
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


def revoke_family(family_id: str, reason: str) -> int:
    """Revoke every token of one session (not committed)."""
    return _revoke(RefreshToken.family_id == family_id, reason)


def revoke_user_tokens(user_id: int, reason: str) -> int:
    """Revoke every token of every session of a user (not committed)."""
    return _revoke(RefreshToken.user_id == user_id, reason)


def _revoke(condition, reason: str) -> int:
    result = db.session.execute(
        sa.update(RefreshToken)
        .where(condition, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def list_sessions(user: User) -> list[dict]:
    """The user's live sessions, newest activity first."""
    now = utcnow()
    live = db.session.scalars(
        sa.select(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.spent_at.is_(None),
               RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > now)
        .order_by(RefreshToken.created_at.desc())
    ).all()
    first_created = sa.type_coerce(sa.func.min(RefreshToken.created_at), UTCDateTime)
    started = dict(db.session.execute(
        sa.select(RefreshToken.family_id, first_created)
        .where(RefreshToken.family_id.in_([t.family_id for t in live]))
        .group_by(RefreshToken.family_id)
    ).all()) if live else {}
    return [
        {
            "id": t.family_id,
            "created_at": started.get(t.family_id, t.created_at),
            "last_used_at": t.created_at,
            "expires_at": t.expires_at,
            "user_agent": t.user_agent,
            "ip_address": t.ip_address,
        }
        for t in live
    ]


def revoke_session(user: User, family_id: str) -> None:
    """Revoke one of the user's own sessions; anyone else's is a 404."""
    own = sa.and_(RefreshToken.family_id == family_id, RefreshToken.user_id == user.id)
    # A NUL in the path would make PostgreSQL reject the query (a 500); no id contains one.
    if "\x00" in family_id or not _revoke(own, REASON_SESSION_REVOKED):
        raise APIError(404, "session_not_found", "No such active session.")
    db.session.commit()
