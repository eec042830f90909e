"""Reads of one row (and its owner) in one statement, handed out as ORM objects.

Every request with a token reads its user and session (a refresh also its token row), and every
login the account it names, before anything else. Through the request's ORM session a read
opens a transaction: BEGIN, the SELECT and a ROLLBACK at teardown. Here each is one
Core SELECT on the autocommit engine (auth_service.persistence.engines); its columns
become detached ORM objects (the mapped class's constructor, then
make_transient_to_detached), which costs a fraction of an ORM session's query. Where the
caller may change the user, it is attached to the request's session, so that it writes
through that session, in a transaction of its own. The token reads also say whether the
key that signed the token has been revoked (one more column, not one more statement):
a revocation made by another process is refused at once, whatever its key ring holds.
These reads see what is committed: unlike a query through the request's session, they do
not flush its pending changes first.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so

from auth_service.extensions import db
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import RefreshToken, Session, SigningKey, User


def user_with_session(
    user_id: int, session_id: str, kid: str, attach: bool
) -> tuple[User | None, Session | None, bool]:
    """The user with this id, their session ``session_id`` and whether signing key
    ``kid`` is revoked, in one statement: (None, None, False) without such a user, (user,
    None, ...) when the session is not theirs or is gone. ``attach``: the user is
    persistent in the request's session; the session row stays detached
    (services/sessions.py writes sessions with statements)."""
    row = _first(_USER_WITH_SESSION, {"id": user_id, "sid": session_id, "kid": kid})
    if row is None:
        return None, None, False
    user, session = _instances(row, User, Session)
    if session is not None and session.user_id != user.id:
        session = None
    return _attached(user) if attach else user, session, row.key_revoked


def user_by_email(email: str, attach: bool) -> User | None:
    """The user with this (normalized) email (``attach``: persistent in the request's session)."""
    row = _first(_USER_BY_EMAIL, {"email": email})
    if row is None:
        return None
    (user,) = _instances(row, User)
    return _attached(user) if attach else user


def token_with_owner(
    jti: str, user_id: int, session_id: str, kid: str, attach_owner: bool
) -> tuple[RefreshToken | None, bool]:
    """The refresh token row ``jti`` with its owner and its session loaded as
    ``token.user`` and ``token.session``, and whether signing key ``kid`` is revoked:
    (None, False) without such a row, or when it is not of account ``user_id`` and
    session ``session_id`` (the token's ``sub`` and ``sid``).

    The token and its session stay detached: nothing changes them through the ORM
    session (auth_service.services.rotation writes them with statements).
    """
    row = _first(_TOKEN_WITH_OWNER, {"jti": jti, "sub": user_id, "sid": session_id, "kid": kid})
    if row is None:
        return None, False
    token, owner, session = _instances(row, RefreshToken, User, Session)
    if token.user_id != user_id or token.family_id != session_id:
        return None, False
    # As loaded relationships, without a query of their own.
    so.attributes.set_committed_value(token, "user", _attached(owner) if attach_owner else owner)
    so.attributes.set_committed_value(token, "session", session)
    return token, row.key_revoked


def _first(statement: sa.Select, params: dict) -> sa.Row | None:
    """The first row of ``statement``: one SELECT, no transaction."""
    with autocommit_engine().connect() as connection:
        return connection.execute(statement, params).first()


def _instances(row: sa.Row, *models) -> list:
    """Detached instances of ``models`` from consecutive columns of ``row`` (None for an
    outer join's missing row), as though a query had loaded them."""
    instances, start = [], 0
    for model in models:
        keys = _KEYS[model]
        values = row[start : start + len(keys)]
        start += len(keys)
        if values[0] is None:  # the primary key: no row
            instances.append(None)
            continue
        instance = model(**dict(zip(keys, values, strict=True)))
        so.make_transient_to_detached(instance)
        instances.append(instance)
    return instances


def _attached(user: User) -> User:
    """``user`` persistent in the request's session; the session's own instance when it
    already holds this user."""
    held = db.session.identity_map.get(sa.inspect(user).identity_key)
    if held is not None:
        return held
    db.session.add(user)
    return user


def _columns(*models) -> list:
    """Every mapped column of ``models``, primary key first, in _KEYS order."""
    return [getattr(model, key) for model in models for key in _KEYS[model]]


# Each model's column attributes, its primary key first (how _instances tells a missing
# outer-joined row).
_KEYS = {
    model: [
        *(sa.inspect(model).get_property_by_column(c).key for c in sa.inspect(model).primary_key),
        *(
            attr.key
            for attr in sa.inspect(model).column_attrs
            if not any(c.primary_key for c in attr.columns)
        ),
    ]
    for model in (User, Session, RefreshToken)
}
# Whether the key that signed the token is revoked: a primary-key probe, the last column
# (_instances reads the columns before it).
_KEY_REVOKED = (
    sa.exists()
    .where(SigningKey.kid == sa.bindparam("kid"), SigningKey.revoked_at.is_not(None))
    .label("key_revoked")
)
# Built once at import; after their first run the engine's compiled cache holds their SQL.
# The session is joined by its primary key alone and its owner compared in Python: with
# the owner in the join condition PostgreSQL plans a real join on every request, which
# costs more than two key probes (bench/results/2026-12-07-issue-23-performance.md).
_USER_WITH_SESSION = (
    sa.select(*_columns(User, Session), _KEY_REVOKED)
    .outerjoin(Session, Session.id == sa.bindparam("sid"))
    .where(User.id == sa.bindparam("id"))
)
_USER_BY_EMAIL = sa.select(*_columns(User)).where(User.email == sa.bindparam("email"))
# Likewise the token's owner and session are probed by the ids its claims name, and
# compared with the row's in Python.
_TOKEN_WITH_OWNER = (
    sa.select(*_columns(RefreshToken, User, Session), _KEY_REVOKED)
    .join_from(RefreshToken, User, User.id == sa.bindparam("sub"))
    .join(Session, Session.id == sa.bindparam("sid"))
    .where(RefreshToken.jti == sa.bindparam("jti"))
)


def owned(model, row_id: str, user_id: int):
    """Row ``row_id`` of ``model`` (a table with ``id`` and ``user_id``) when it is
    ``user_id``'s, else None. An id with a NUL matches nothing: PostgreSQL would refuse
    the query (a 500), and no id contains one."""
    if "\x00" in row_id:
        return None
    return db.session.scalar(sa.select(model).where(model.id == row_id, model.user_id == user_id))
