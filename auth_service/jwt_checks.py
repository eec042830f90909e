"""flask-jwt-extended callbacks: what makes a token acceptable.

flask-jwt-extended accepts tokens without ``exp``, treats a token without
``type`` as an access token and trusts any ``sub``; these callbacks close those
gaps (RFC 8725) and tie tokens to the database state.
"""

from __future__ import annotations

import hmac

import jwt as pyjwt
import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask, current_app, g
from flask_jwt_extended.exceptions import CSRFError, JWTDecodeError
from jwt.exceptions import ExpiredSignatureError

from auth_service.engines import autocommit_engine
from auth_service.extensions import db, jwt
from auth_service.models import RefreshToken, User

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "jti", "type", "sub", "sid", "ver")
TOKEN_TYPES = ("access", "refresh")
# Headers that would let a token name its own key or algorithm parameters.
FORBIDDEN_HEADERS = ("kid", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit")
MAX_USER_ID_DIGITS = 18
_PYJWT = pyjwt.PyJWT()


def init_app(app: Flask) -> None:
    """Pin the algorithm and register the loaders."""
    app.config["JWT_ALGORITHM"] = ALGORITHM
    app.config["JWT_DECODE_ALGORITHMS"] = [ALGORITHM]
    # Access tokens travel only in the Authorization header; the refresh view
    # names its own locations (JSON body or cookie).
    app.config["JWT_TOKEN_LOCATION"] = ["headers"]
    app.config["JWT_COOKIE_CSRF_PROTECT"] = True
    app.config["JWT_CSRF_IN_COOKIES"] = True
    app.config["JWT_CSRF_CHECK_FORM"] = False
    app.config["JWT_REFRESH_JSON_KEY"] = "refresh_token"
    app.config["JWT_SESSION_COOKIE"] = False
    app.config["JWT_VERIFY_SUB"] = True


def decode(encoded_token: str, csrf_value: str | None = None,
           allow_expired: bool = False) -> dict:
    """Verify a token and return its claims: what flask-jwt-extended's decode does, in one
    parse instead of three (it decodes unverified claims and the header separately first;
    auth_service.extensions.JWTManager routes its decodes here).

    Signature (HS256 only), exp, iat, nbf and iss are checked by PyJWT; then the header
    and the claims this service relies on; then the CSRF double-submit value.
    """
    config = current_app.config
    options = {"require": list(REQUIRED_CLAIMS), "verify_sub": True, "verify_aud": False,
               "verify_exp": not allow_expired}
    try:
        complete = _PYJWT.decode_complete(
            encoded_token, config["JWT_SECRET_KEY"], algorithms=[ALGORITHM],
            issuer=config["JWT_DECODE_ISSUER"], leeway=config["JWT_DECODE_LEEWAY"],
            options=options)
    except ExpiredSignatureError as error:
        # flask-jwt-extended's expired-token handler reads these two.
        error.jwt_header = pyjwt.get_unverified_header(encoded_token)
        error.jwt_data = decode(encoded_token, csrf_value, allow_expired=True)
        raise
    header, claims = complete["header"], complete["payload"]
    if any(name in header for name in FORBIDDEN_HEADERS):
        raise JWTDecodeError("Unsupported token header")
    if claims["type"] not in TOKEN_TYPES:
        raise JWTDecodeError("Unknown token type")
    sub = claims["sub"]
    # ASCII only: str.isdigit() also accepts "²" (int() raises) and "١" (another spelling of 1).
    if not (isinstance(sub, str) and sub.isascii() and sub.isdigit()
            and len(sub) <= MAX_USER_ID_DIGITS):
        raise JWTDecodeError("Invalid subject")
    if not isinstance(claims["jti"], str):
        raise JWTDecodeError("Invalid token id")
    claims.setdefault("fresh", False)
    if csrf_value:
        if not isinstance(claims.get("csrf"), str):
            raise JWTDecodeError("Missing claim: csrf")
        if not hmac.compare_digest(claims["csrf"], csrf_value):
            raise CSRFError("CSRF double submit tokens do not match")
    return claims


@jwt.user_identity_loader
def user_identity(user: User) -> str:
    """``sub`` is the user id as a string (RFC 7519 requires a string)."""
    return str(user.id)


@jwt.user_lookup_loader
def load_user(header: dict, payload: dict) -> User | None:
    """Load the user on every request: deleted, inactive or re-passworded users are refused."""
    user_id = int(payload["sub"])
    # A refresh brought the user along with its token row (is_revoked, which runs first).
    user = db.session.identity_map.get(so.util.identity_key(User, user_id))
    if user is None:
        with autocommit_engine().connect() as connection:
            row = connection.execute(_USER_BY_ID, {"id": user_id}).first()
        user = None if row is None else _attach(User, row)
    if user is None or not user.is_active or payload.get("ver") != user.token_version:
        return None
    return user


@jwt.token_in_blocklist_loader
def is_revoked(header: dict, payload: dict) -> bool:
    """Refresh tokens must be a known, unrevoked row; access tokens are stateless.

    A *spent* token is not reported here: the refresh view decides between the
    grace window and reuse detection. A database error propagates (fail closed).
    """
    if payload["type"] != "refresh":
        return False
    # The owner comes in the same SELECT: load_user, which runs next, then finds it in
    # the session and checks it without a query of its own.
    with autocommit_engine().connect() as connection:
        row = connection.execute(_TOKEN_WITH_USER, {"jti": payload["jti"]}).first()
    token = None
    if row is not None:
        token = _attach(RefreshToken, row[:len(_TOKEN_COLUMNS)])
        user = db.session.identity_map.get(so.util.identity_key(User, token.user_id))
        # As a loaded relationship: the session holds its objects weakly, the token holds
        # the user until load_user has found it.
        so.attributes.set_committed_value(
            token, "user", user or _attach(User, row[len(_TOKEN_COLUMNS):]))
    g.refresh_token_row = token
    return token is None or token.revoked_at is not None


# --- the reads behind the loaders ------------------------------------------------------
# One SELECT each, on the autocommit engine (auth_service.engines: one round trip, no
# transaction). The rows become ORM objects of the request's session as though the
# session had loaded them (make_transient_to_detached), so a view that changes the user
# or the token writes through the session, in a transaction of its own, as usual.

def _columns(model) -> list[tuple[str, sa.Column]]:
    return [(prop.key, prop.columns[0]) for prop in sa.inspect(model).column_attrs]


_COLUMNS = {User: _columns(User), RefreshToken: _columns(RefreshToken)}
_USER_COLUMNS, _TOKEN_COLUMNS = _COLUMNS[User], _COLUMNS[RefreshToken]
_USER_BY_ID = sa.select(*(column for _, column in _USER_COLUMNS)).where(
    User.__table__.c.id == sa.bindparam("id"))
_TOKEN_WITH_USER = (
    sa.select(*(column for _, column in _TOKEN_COLUMNS + _USER_COLUMNS))
    .join_from(RefreshToken.__table__, User.__table__)
    .where(RefreshToken.__table__.c.jti == sa.bindparam("jti"))
)


def _attach(model, values):
    """An instance of ``model`` from a row of its columns, persistent in the session."""
    instance = model(**{key: value for (key, _), value in zip(_COLUMNS[model], values)})
    so.make_transient_to_detached(instance)
    db.session.add(instance)
    return instance
