"""Reads of one row (and its owner) in one statement, handed out as ORM objects.

Every request with a token reads its user (a refresh also its token row), and every
login the account it names, before anything else. Through the ORM session a read
opens a transaction: BEGIN, the SELECT and a ROLLBACK at teardown. Here each is one
SELECT on the autocommit engine (auth_service.engines). The rows become ORM objects as
though a session had loaded them (make_transient_to_detached), attached to the
request's session where the caller may change them, so that it writes through the
session, in a transaction of its own. They read what is committed: unlike a query
through the session, they do not flush the session's pending changes first.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so

from auth_service.engines import Prepared, autocommit_engine
from auth_service.extensions import db
from auth_service.models import RefreshToken, User


def user_by_id(user_id: int, attach: bool) -> User | None:
    """The user with this id (``attach``: persistent in the request's session)."""
    row = _first(_USER_BY_ID, {"id": user_id})
    return None if row is None else _user(row, attach)


def user_by_email(email: str, attach: bool) -> User | None:
    """The user with this (normalized) email (``attach``: persistent in the request's session)."""
    row = _first(_USER_BY_EMAIL, {"email": email})
    return None if row is None else _user(row, attach)


def token_with_owner(jti: str, attach_owner: bool) -> RefreshToken | None:
    """The refresh token row ``jti`` with its owner loaded as ``token.user``.

    The token stays detached: nothing changes a token through the session
    (auth_service.tokens writes them with statements).
    """
    row = _first(_TOKEN_WITH_USER, {"jti": jti})
    if row is None:
        return None
    token = _instance(RefreshToken, row[:len(_TOKEN_COLUMNS)])
    so.attributes.set_committed_value(  # as a loaded relationship
        token, "user", _user(row[len(_TOKEN_COLUMNS):], attach_owner))
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


_COLUMNS = {User: _columns(User), RefreshToken: _columns(RefreshToken)}
_USER_COLUMNS, _TOKEN_COLUMNS = _COLUMNS[User], _COLUMNS[RefreshToken]
_USER_ID = next(i for i, (key, _) in enumerate(_USER_COLUMNS) if key == "id")
_KEYS = {model: [key for key, _ in columns] for model, columns in _COLUMNS.items()}
_MANAGERS = {model: sa.inspect(model).class_manager for model in _COLUMNS}
_USERS = User.__table__
_USER_SELECT = sa.select(*(column for _, column in _USER_COLUMNS))
_USER_BY_ID = Prepared(_USER_SELECT.where(_USERS.c.id == sa.bindparam("id")))
_USER_BY_EMAIL = Prepared(_USER_SELECT.where(_USERS.c.email == sa.bindparam("email")))
_TOKEN_WITH_USER = Prepared(
    sa.select(*(column for _, column in _TOKEN_COLUMNS + _USER_COLUMNS))
    .join_from(RefreshToken.__table__, _USERS)
    .where(RefreshToken.__table__.c.jti == sa.bindparam("jti"))
)
