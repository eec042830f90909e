"""The form of a token: what this service accepts before any database read.

``check_compact_form`` refuses the other spellings of a token that a lenient base64
decoder accepts (padding, the ``+/`` alphabet, a signature's spare bits) and any header
but the exact bytes PyJWT writes, so that a token has exactly one spelling: the request
guard (auth_service.http.common) runs it on the raw token before flask-jwt-extended.

``decode_key`` (flask-jwt-extended's ``decode_key_loader``) runs before any signature
is computed: it refuses a header other than one this service writes (unknown, expired or
revoked ``kid``, an ``alg`` other than the key's, ``jku``, ``jwk``, ``x5u``, ``x5c``,
``crit``, any extra field) and claims of another shape than the token type's
(flask-jwt-extended would take a token without ``type`` for an access token, and one
without ``exp`` for eternal), then hands over the key that verifies the signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from flask import current_app
from jwt.exceptions import (
    DecodeError,
    InvalidAudienceError,
    InvalidIssuerError,
    MissingRequiredClaimError,
)

from auth_service.extensions import jwt
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
    # No leading zero: "01" is not the subject this service writes for account 1.
    if not (
        isinstance(sub, str)
        and sub.isascii()
        and sub.isdigit()
        and len(sub) <= MAX_USER_ID_DIGITS
        and (sub == "0" or not sub.startswith("0"))
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
