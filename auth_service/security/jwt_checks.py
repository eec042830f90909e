"""Tokens: how they are issued and what makes one acceptable, through flask-jwt-extended.

Keys come from auth_service.security.signing_keys: every token is signed by the current
key and names it in ``kid``; verification picks the key by ``kid``. flask-jwt-extended
verifies every token and issues refresh tokens through its documented hooks
(``encode_key_loader``, ``additional_headers_loader``, ``decode_key_loader``). Access
tokens follow RFC 9068 (``typ: at+jwt``, ``iss``, ``aud``, ``client_id``) and are written
by PyJWT with the same key: flask-jwt-extended would add ``fresh`` and ``csrf`` claims
that have no place in a token resource servers read.

``decode_key_loader`` runs before any signature is computed: it refuses a header other
than one this service writes (unknown, expired or revoked ``kid``, an ``alg`` other than
the key's, ``jku``, ``jwk``, ``x5u``, ``x5c``, ``crit``, any extra field) and claims of
another shape than the token type's (flask-jwt-extended would take a token without
``type`` for an access token, and one without ``exp`` for eternal);
``token_in_blocklist_loader`` ties every token to its session row, and a refresh token
to its own row, and refuses a key revoked since this process read its keys; ``user_lookup_loader`` to an active account at the token's version.

``check_compact_form`` refuses the other spellings of a token that a lenient base64
decoder accepts (padding, the ``+/`` alphabet, a signature's spare bits) and any header
but the exact bytes PyJWT writes, so that a token has exactly one spelling: the request
guard (auth_service.http.common) runs it on the raw token before flask-jwt-extended.

The rows these checks read form the request's ``TokenContext``, one object that the
loaders, the views and the request log share.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import timedelta

import jwt as pyjwt
from flask import Flask, current_app, g, request
from flask_jwt_extended import create_refresh_token
from jwt.exceptions import (
    DecodeError,
    InvalidAudienceError,
    InvalidIssuerError,
    MissingRequiredClaimError,
)

from auth_service.extensions import jwt
from auth_service.persistence import queries
from auth_service.persistence.models import RefreshToken, Session, User, new_uuid, utcnow
from auth_service.security import key_material, signing_keys

# The header ``typ`` of each kind of token; the refresh token's is ours, so that no
# RFC 9068 verifier takes it for an access token.
ACCESS_TYP = "at+jwt"
REFRESH_TYP = "refresh+jwt"
# The header of tokens from before key ids: JWT_SECRET_KEY's, verifiable while the
# adopted HS256 key is (signing_keys).
LEGACY_HEADER = {"alg": key_material.HS256, "typ": "JWT"}
# The one OAuth client: this service's own login API (no client registration).
CLIENT_ID = "auth_service"
ACCESS_CLAIMS = ("exp", "iat", "jti", "sub", "sid", "ver", "iss", "aud", "client_id")
REFRESH_CLAIMS = ("exp", "iat", "jti", "type", "sub", "sid", "ver", "iss", "aud", "csrf")
LEGACY_CLAIMS = ("exp", "iat", "jti", "type", "sub", "sid", "ver")
TOKEN_TYPES = ("access", "refresh")
MAX_USER_ID_DIGITS = 18
# One refusal for a revoked key, whether this process's key ring knows of it yet or the
# token check's read tells it (another instance revoked it).
UNUSABLE_KEY = "Unknown or unusable signing key"
# Requests that must not change anything (RFC 9110): their user is read, not attached.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    """The algorithms, where tokens travel, and the keys."""
    config = app.config
    # Each token's own key decides its algorithm (decode_key); these are the candidates.
    config["JWT_DECODE_ALGORITHMS"] = list(key_material.ALGORITHMS)
    # iss and aud depend on the token type: decode_key checks them, before the signature.
    config["JWT_ENCODE_ISSUER"] = config["JWT_ISSUER"]
    config["JWT_DECODE_ISSUER"] = None
    config["JWT_ENCODE_AUDIENCE"] = config["JWT_ISSUER"]
    config["JWT_DECODE_AUDIENCE"] = None
    config["JWT_ENCODE_NBF"] = False
    # Access tokens travel only in the Authorization header; the refresh view
    # names its own locations (JSON body or cookie).
    config["JWT_TOKEN_LOCATION"] = ["headers"]
    config["JWT_COOKIE_CSRF_PROTECT"] = True
    config["JWT_CSRF_IN_COOKIES"] = True
    config["JWT_CSRF_CHECK_FORM"] = False
    config["JWT_REFRESH_JSON_KEY"] = "refresh_token"
    config["JWT_SESSION_COOKIE"] = False
    config["JWT_VERIFY_SUB"] = True
    config["JWT_IDENTITY_CLAIM"] = "sub"
    key_material.use_deterministic_ecdsa()
    signing_keys.init_app(app)


def audience() -> str | list[str]:
    """The ``aud`` of access tokens: one string for one audience (RFC 7519 allows both)."""
    audiences = list(current_app.config["JWT_AUDIENCE"])
    return audiences[0] if len(audiences) == 1 else audiences


# --- issuing ---------------------------------------------------------------------------


def issue_access_token(user_id: int, version: int, session: Session) -> str:
    """An RFC 9068 access token of ``session`` for ``user_id`` at token version
    ``version``, saying how the session was proven: ``aal``, ``amr`` (RFC 8176) and
    ``auth_time``."""
    key = signing_keys.signing_key()
    now = utcnow()
    lifetime: timedelta = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    claims = {
        "iss": current_app.config["JWT_ISSUER"],
        "sub": str(user_id),
        "aud": audience(),
        "client_id": CLIENT_ID,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": new_uuid(),
        "sid": session.id,
        "ver": version,
        "aal": session.aal,
        "amr": session.methods,
    }
    proven_at = session.authenticated_at or session.created_at
    if proven_at is not None:
        claims["auth_time"] = int(proven_at.timestamp())
    return pyjwt.encode(
        claims, key.signing, algorithm=key.algorithm, headers=_header(key, ACCESS_TYP)
    )


def issue_refresh_token(user_id: int, version: int, token, csrf: str) -> str:
    """The refresh token of row ``token`` (its jti, session, creation and expiry).

    Its claims come from the row alone, so the same row always gives the same token: a
    duplicate refresh inside the grace window receives the very token the first got
    (while the same key signs). Its ``aud`` is this service alone.
    """
    claims = {
        "sid": token.family_id,
        "ver": version,
        "jti": token.jti,
        "iat": int(token.created_at.timestamp()),
        "exp": int(token.expires_at.timestamp()),
        "csrf": csrf,
    }
    return create_refresh_token(
        identity=str(user_id), additional_claims=claims, additional_headers={"typ": REFRESH_TYP}
    )


def _header(key: signing_keys.Key, typ: str) -> dict:
    return {"alg": key.algorithm, "kid": key.kid, "typ": typ}


@jwt.encode_key_loader
def encode_key(identity):
    """The current key signs (the same one for every token of a request)."""
    return signing_keys.signing_key().signing


@jwt.additional_headers_loader
def additional_headers(identity) -> dict:
    """``kid`` and ``alg`` of the current key: PyJWT takes the header's ``alg`` over
    flask-jwt-extended's JWT_ALGORITHM, so the key and its algorithm always agree."""
    key = signing_keys.signing_key()
    return {"alg": key.algorithm, "kid": key.kid}


@jwt.user_identity_loader
def user_identity(identity) -> str:
    """``sub`` is the user id as a string (RFC 7519 requires a string)."""
    return str(identity.id if isinstance(identity, User) else identity)


# --- the form of a token ---------------------------------------------------------------


def check_compact_form(encoded_token) -> None:
    """Refuse (DecodeError) any spelling of a token but the one this service writes:
    a header of exactly PyJWT's bytes naming a key that verifies, and canonical unpadded
    base64url (RFC 7515 section 2) in every segment."""
    if not isinstance(encoded_token, str):
        raise DecodeError("Invalid token type")
    parts = encoded_token.split(".")
    if len(parts) != 3 or not all(_is_canonical_base64url(part) for part in parts):
        raise DecodeError("Invalid token segments")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        raise DecodeError("Unsupported token header") from None
    if not isinstance(header, dict) or raw != _canonical(header):
        raise DecodeError("Unsupported token header")
    header_key(header)


def _canonical(header: dict) -> bytes:
    """The header as PyJWT writes it: sorted keys, no spaces."""
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode()


def header_key(header: dict) -> signing_keys.Key:
    """The key a header names when it is one this service writes (DecodeError else):
    the fields ``alg``, ``kid`` and ``typ`` exactly, a key that may verify now, and that
    key's algorithm; or the header of tokens from before key ids, while the HS256 key of
    JWT_SECRET_KEY verifies."""
    key = signing_keys.keyring().verifying_key(key_id(header))
    if key is None or header["alg"] != key.algorithm:
        raise DecodeError(UNUSABLE_KEY)
    return key


def key_id(header: dict) -> str:
    """The kid of the key a header of this service names (DecodeError for any other)."""
    if header == LEGACY_HEADER:
        return key_material.hs256_kid(current_app.config["JWT_SECRET_KEY"])
    if set(header) == {"alg", "kid", "typ"} and header["typ"] in (ACCESS_TYP, REFRESH_TYP):
        return header["kid"]
    raise DecodeError("Unsupported token header")


def _is_canonical_base64url(segment: str) -> bool:
    """The alphabet, a length some byte string encodes to, and zero spare bits in the
    last character (4 of them after 1 byte of a group, 2 after 2): no decode needed."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return False
    spare_bits = {0: 0, 2: 4, 3: 2}[len(segment) % 4]
    return _BASE64URL.index(segment[-1]) % (1 << spare_bits) == 0


# Unpadded base64url, ASCII only.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@jwt.decode_key_loader
def decode_key(header: dict, claims: dict):
    """The key to verify a token with, once its header and claims have the form this
    service writes for its type (checked before the signature is computed)."""
    key = header_key(header)
    typ = header["typ"]
    required = {ACCESS_TYP: ACCESS_CLAIMS, REFRESH_TYP: REFRESH_CLAIMS}.get(typ, LEGACY_CLAIMS)
    for name in required:
        if claims.get(name) is None:
            raise MissingRequiredClaimError(name)
    _check_subject(claims["sub"])
    if typ == ACCESS_TYP:
        # flask-jwt-extended reads a token without ``type`` as an access token.
        if "type" in claims or claims["client_id"] != CLIENT_ID:
            raise DecodeError("Not an access token")
        _check_audience(claims, current_app.config["JWT_AUDIENCE"])
    elif typ == REFRESH_TYP:
        if claims["type"] != "refresh":
            raise DecodeError("Not a refresh token")
        _check_audience(claims, [current_app.config["JWT_ISSUER"]])
    elif claims["type"] not in TOKEN_TYPES:
        raise DecodeError("Unknown token type")
    if typ != LEGACY_HEADER["typ"] and claims["iss"] != current_app.config["JWT_ISSUER"]:
        raise InvalidIssuerError("Invalid issuer")
    if not (
        isinstance(claims["jti"], str)
        and isinstance(claims["sid"], str)
        and isinstance(claims["ver"], int)
    ):
        raise DecodeError("Invalid token id, session or version")
    return key.verifying


def _check_subject(sub) -> None:
    # ASCII only: str.isdigit() also accepts "²" (int() raises) and "١" (another spelling of 1).
    if not (
        isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= MAX_USER_ID_DIGITS
    ):
        raise DecodeError("Invalid subject")


def _check_audience(claims: dict, accepted) -> None:
    """``aud`` is one of ``accepted``, or a list of strings that names one."""
    aud = claims["aud"]
    named = [aud] if isinstance(aud, str) else aud
    if not (
        isinstance(named, list)
        and named
        and all(isinstance(a, str) for a in named)
        and set(named) & set(accepted)
    ):
        raise InvalidAudienceError("Invalid audience")


# --- what a verified token stands for --------------------------------------------------


@dataclass
class TokenContext:
    """What the database says about the token of this request: its account, its session,
    and for a refresh token its row (None when unknown)."""

    claims: dict
    user: User | None
    session: Session | None
    refresh_token: RefreshToken | None = None
    key_revoked: bool = False

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


def _load_context(header: dict, claims: dict) -> TokenContext:
    """The rows of a token and whether its key is revoked, read in one statement (the
    user attached to the request's session only where the request may change it)."""
    attach = request.method not in SAFE_METHODS
    kid = key_id(header)
    if claims["type"] == "refresh":
        token, key_revoked = queries.token_with_owner(claims["jti"], kid, attach_owner=attach)
        if token is None or str(token.user_id) != claims["sub"] or token.family_id != claims["sid"]:
            return TokenContext(claims, None, None)
        return TokenContext(claims, token.user, token.session, token, key_revoked)
    user, session, key_revoked = queries.user_with_session(
        int(claims["sub"]), claims["sid"], kid, attach
    )
    return TokenContext(claims, user, session, key_revoked=key_revoked)


@jwt.token_in_blocklist_loader
def is_revoked(header: dict, claims: dict) -> bool:
    """A token is revoked when its session is: ended, or not its account's. A refresh
    token must also be a known, unrevoked row; a *spent* one is not reported here (the
    refresh decides between the grace window and reuse). A database error propagates
    (fail closed).

    A token whose key was revoked since this process read its keys is refused as
    decode_key refuses it once the key ring knows (DecodeError: invalid_token), and the
    ring is read again by the next request, so this process stops signing with it."""
    g.token_context = _load_context(header, claims)
    if g.token_context.key_revoked:
        signing_keys.forget(current_app)
        raise DecodeError(UNUSABLE_KEY)
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
