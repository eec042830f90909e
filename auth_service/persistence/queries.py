"""Reads of one row (and its owner) in one statement, handed out as ORM objects.

Every request with a token reads its user and session (a refresh also its token row), and every
login the account it names, before anything else. Through the ORM session a read
opens a transaction: BEGIN, the SELECT and a ROLLBACK at teardown. Here each is one
SELECT on the autocommit engine (auth_service.persistence.engines). The rows become ORM objects as
though a session had loaded them (make_transient_to_detached), attached to the
request's session where the caller may change them, so that it writes through the
session, in a transaction of its own. They read what is committed: unlike a query
through the session, they do not flush the session's pending changes first.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so

from auth_service.persistence.engines import Prepared, autocommit_engine
from auth_service.extensions import db
from auth_service.persistence.models import RefreshToken, Session, User


def user_with_session(user_id: int, session_id: str,
                      attach: bool) -> tuple[User | None, Session | None]:
    """The user with this id and their session ``session_id``, in one statement: (None,
    None) without such a user, (user, None) when the session is not theirs or is gone.
    ``attach``: the user is persistent in the request's session; the session row stays
    detached (tokens.py writes sessions with statements)."""
    row = _first(_USER_WITH_SESSION, {"id": user_id, "sid": session_id})
    if row is None:
        return None, None
    user = _user(row[:len(_USER_COLUMNS)], attach)
    session_values = row[len(_USER_COLUMNS):]
    return user, _instance(Session, session_values) if session_values[0] is not None else None


def user_by_email(email: str, attach: bool) -> User | None:
    """The user with this (normalized) email (``attach``: persistent in the request's session)."""
    row = _first(_USER_BY_EMAIL, {"email": email})
    return None if row is None else _user(row, attach)


def token_with_owner(jti: str, attach_owner: bool) -> RefreshToken | None:
    """The refresh token row ``jti`` with its owner and its session loaded as
    ``token.user`` and ``token.session``.

    The token and its session stay detached: nothing changes them through the ORM
    session (auth_service.services.sessions writes them with statements).
    """
    row = _first(_TOKEN_WITH_OWNER, {"jti": jti})
    if row is None:
        return None
    token_end, user_end = len(_TOKEN_COLUMNS), len(_TOKEN_COLUMNS) + len(_USER_COLUMNS)
    token = _instance(RefreshToken, row[:token_end])
    # As loaded relationships.
    so.attributes.set_committed_value(token, "user", _user(row[token_end:user_end], attach_owner))
    so.attributes.set_committed_value(token, "session", _instance(Session, row[user_end:]))
    return token


def _first(statement: Prepared, params: dict) -> tuple | None:
    return statement.first(autocommit_engine(), params)


def _user(values, attach: bool) -> User:
    """A user from its row; the session's own instance when it already holds this user."""
    if attach:
        held = db.session.identity_map.get(so.util.identity_key(User, values[_USER_ID]))
        if held is not None:
            return held
    user = _instance(User, values)
    if attach:
        db.session.add(user)
    return user


def _instance(model, values):
    """A detached instance of ``model`` from a row of its columns, filled in as a query
    fills it: straight into its state, with no attribute events (model(**values) fires
    one per column, and costs three times as much)."""
    instance = _MANAGERS[model].new_instance()
    so.attributes.instance_dict(instance).update(zip(_KEYS[model], values))
    so.make_transient_to_detached(instance)
    return instance


def _columns(model) -> list[tuple[str, sa.Column]]:
    return [(prop.key, prop.columns[0]) for prop in sa.inspect(model).column_attrs]


_COLUMNS = {model: _columns(model) for model in (User, RefreshToken, Session)}
_USER_COLUMNS, _TOKEN_COLUMNS, _SESSION_COLUMNS = (_COLUMNS[User], _COLUMNS[RefreshToken],
                                                   _COLUMNS[Session])
_USER_ID = next(i for i, (key, _) in enumerate(_USER_COLUMNS) if key == "id")
_KEYS = {model: [key for key, _ in columns] for model, columns in _COLUMNS.items()}
_MANAGERS = {model: sa.inspect(model).class_manager for model in _COLUMNS}
_USERS = User.__table__
_USER_SELECT = sa.select(*(column for _, column in _USER_COLUMNS))
_SESSIONS = Session.__table__
_USER_WITH_SESSION = Prepared(
    sa.select(*(column for _, column in _USER_COLUMNS + _SESSION_COLUMNS))
    .outerjoin_from(_USERS, _SESSIONS, sa.and_(_SESSIONS.c.id == sa.bindparam("sid"),
                                               _SESSIONS.c.user_id == _USERS.c.id))
    .where(_USERS.c.id == sa.bindparam("id"))
)
_USER_BY_EMAIL = Prepared(_USER_SELECT.where(_USERS.c.email == sa.bindparam("email")))
_TOKEN_WITH_OWNER = Prepared(
    sa.select(*(column for _, column in _TOKEN_COLUMNS + _USER_COLUMNS + _SESSION_COLUMNS))
    .join_from(RefreshToken.__table__, _USERS)
    .join(_SESSIONS, _SESSIONS.c.id == RefreshToken.__table__.c.family_id)
    .where(RefreshToken.__table__.c.jti == sa.bindparam("jti"))
)
