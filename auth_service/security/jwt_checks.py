"""Tokens: how they are issued and what makes one acceptable, through flask-jwt-extended.

flask-jwt-extended issues and verifies every token (PyJWT, HS256 pinned). Its documented
hooks close the gaps RFC 8725 names:

- ``decode_key_loader`` runs before any signature is computed: it refuses a header other
  than the one this service writes (another algorithm, ``none``, ``kid``, ``jku``,
  ``jwk``, ``x5u``, ``x5c``, ``crit``, any extra field) and a payload without a claim
  this service relies on (flask-jwt-extended would take a token without ``type`` for an
  access token, and one without ``exp`` for eternal);
- ``token_in_blocklist_loader`` ties every token to its session row, and a refresh token
  to its own row; ``user_lookup_loader`` to an active account at the token's version.

``check_compact_form`` refuses the other spellings of a token that a lenient base64
decoder accepts (padding, the ``+/`` alphabet, a signature's spare bits), so that a
token has exactly one spelling: the request guard (auth_service.http.common) runs it on
the raw token before flask-jwt-extended reads it.

The rows these checks read form the request's ``TokenContext``, one object that the
loaders, the views and the request log share.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from flask_jwt_extended import create_access_token, create_refresh_token
from jwt.exceptions import DecodeError, MissingRequiredClaimError

from auth_service.extensions import jwt
from auth_service.persistence import queries
from auth_service.persistence.models import RefreshToken, Session, User, utcnow

ALGORITHM = "HS256"
# The one header this service writes (flask-jwt-extended's, through PyJWT).
HEADER = {"alg": ALGORITHM, "typ": "JWT"}
REQUIRED_CLAIMS = ("exp", "iat", "jti", "type", "sub", "sid", "ver")
TOKEN_TYPES = ("access", "refresh")
MAX_USER_ID_DIGITS = 18
# Requests that must not change anything (RFC 9110): their user is read, not attached.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Pin the algorithm and where tokens travel."""
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
    app.config["JWT_IDENTITY_CLAIM"] = "sub"


# --- issuing ---------------------------------------------------------------------------


def issue_access_token(user_id: int, version: int, session: Session) -> str:
    """An access token of ``session`` for ``user_id`` at token version ``version``, saying
    how the session was proven: ``aal``, ``amr`` (RFC 8176) and ``auth_time``."""
    claims = {"sid": session.id, "ver": version, "aal": session.aal, "amr": session.methods}
    proven_at = session.authenticated_at or session.created_at
    if proven_at is not None:
        claims["auth_time"] = int(proven_at.timestamp())
    return create_access_token(identity=str(user_id), additional_claims=claims)


def issue_refresh_token(user_id: int, version: int, token, csrf: str) -> str:
    """The refresh token of row ``token`` (its jti, session, creation and expiry).

    Its claims come from the row alone, so the same row always gives the same token: a
    duplicate refresh inside the grace window receives the very token the first got.
    """
    issued = int(token.created_at.timestamp())
    claims = {
        "sid": token.family_id,
        "ver": version,
        "jti": token.jti,
        "iat": issued,
        "exp": int(token.expires_at.timestamp()),
        "csrf": csrf,
    }
    if current_app.config["JWT_ENCODE_NBF"]:
        claims["nbf"] = issued
    return create_refresh_token(identity=str(user_id), additional_claims=claims)


@jwt.user_identity_loader
def user_identity(identity) -> str:
    """``sub`` is the user id as a string (RFC 7519 requires a string)."""
    return str(identity.id if isinstance(identity, User) else identity)


# --- the form of a token ---------------------------------------------------------------


def check_compact_form(encoded_token) -> None:
    """Refuse (DecodeError) any spelling of a token but the one this service writes:
    the exact header segment, and canonical unpadded base64url (RFC 7515 section 2)."""
    if not isinstance(encoded_token, str):
        raise DecodeError("Invalid token type")
    parts = encoded_token.split(".")
    if len(parts) != 3 or parts[0] != HEADER_SEGMENT:
        raise DecodeError("Unsupported token header")
    if not all(_is_canonical_base64url(part) for part in parts[1:]):
        raise DecodeError("Invalid token segments")


def _is_canonical_base64url(segment: str) -> bool:
    """The alphabet, a length some byte string encodes to, and zero spare bits in the
    last character (4 of them after 1 byte of a group, 2 after 2): no decode needed."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return False
    spare_bits = {0: 0, 2: 4, 3: 2}[len(segment) % 4]
    return _BASE64URL.index(segment[-1]) % (1 << spare_bits) == 0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Unpadded base64url, ASCII only; the header as PyJWT writes HEADER (sorted, no spaces).
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
HEADER_SEGMENT = _b64url(b'{"alg":"HS256","typ":"JWT"}')


@jwt.decode_key_loader
def decode_key(header: dict, claims: dict) -> str:
    """The key to verify a token with, once its header and claims have the form this
    service writes (checked before the signature is computed)."""
    if header != HEADER:
        raise DecodeError("Unsupported token header")
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise MissingRequiredClaimError(name)
    sub = claims["sub"]
    # ASCII only: str.isdigit() also accepts "²" (int() raises) and "١" (another spelling of 1).
    if not (
        isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= MAX_USER_ID_DIGITS
    ):
        raise DecodeError("Invalid subject")
    if claims["type"] not in TOKEN_TYPES:
        raise DecodeError("Unknown token type")
    if not (
        isinstance(claims["jti"], str)
        and isinstance(claims["sid"], str)
        and isinstance(claims["ver"], int)
    ):
        raise DecodeError("Invalid token id, session or version")
    return current_app.config["JWT_SECRET_KEY"]


# --- what a verified token stands for --------------------------------------------------


@dataclass
class TokenContext:
    """What the database says about the token of this request: its account, its session,
    and for a refresh token its row (None when unknown)."""

    claims: dict
    user: User | None
    session: Session | None
    refresh_token: RefreshToken | None = None

    @property
    def revoked(self) -> bool:
        """The session has ended, expired or is not this account's; a refresh token's
        row is unknown or revoked."""
        if self.claims["type"] == "refresh" and (
            self.refresh_token is None or self.refresh_token.revoked_at is not None
        ):
            return True
        return self.user is not None and (
            self.session is None or not self.session.is_live(utcnow())
        )


def token_context() -> TokenContext | None:
    """The context of the token this request presented, once the blocklist check ran."""
    return g.get("token_context")


def _load_context(claims: dict) -> TokenContext:
    """The rows of a token, read in one statement (the user attached to the request's
    session only where the request may change it)."""
    attach = request.method not in SAFE_METHODS
    if claims["type"] == "refresh":
        token = queries.token_with_owner(claims["jti"], attach_owner=attach)
        if token is None or str(token.user_id) != claims["sub"] or token.family_id != claims["sid"]:
            return TokenContext(claims, None, None)
        return TokenContext(claims, token.user, token.session, token)
    user, session = queries.user_with_session(int(claims["sub"]), claims["sid"], attach)
    return TokenContext(claims, user, session)


@jwt.token_in_blocklist_loader
def is_revoked(header: dict, claims: dict) -> bool:
    """A token is revoked when its session is: ended, or not its account's. A refresh
    token must also be a known, unrevoked row; a *spent* one is not reported here (the
    refresh decides between the grace window and reuse). A database error propagates
    (fail closed)."""
    g.token_context = _load_context(claims)
    return g.token_context.revoked


@jwt.user_lookup_loader
def load_user(header: dict, claims: dict) -> User | None:
    """The token's account, when it is active and at the token's version: deleted,
    deactivated and re-passworded accounts are refused."""
    context = token_context()
    user = context.user if context is not None and context.claims["jti"] == claims["jti"] else None
    if user is None or not user.is_active or claims["ver"] != user.token_version:
        return None
    return user
