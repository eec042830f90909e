"""Tokens: how they are signed and verified, and what makes one acceptable.

flask-jwt-extended accepts tokens without ``exp``, treats a token without
``type`` as an access token and trusts any ``sub``; the checks here close those
gaps (RFC 8725) and its callbacks tie tokens to the database state. Tokens are
signed and verified here (HS256 under one fixed header, one pass each way);
flask-jwt-extended still finds them in the request, sets the refresh cookies, keeps
the request context (current_user, get_jwt) and answers errors through its loaders.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import timedelta

from flask import Flask, current_app, g, request
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.exceptions import CSRFError, JWTDecodeError, NoAuthorizationError
from flask_jwt_extended.internal_utils import (custom_verification_for_token,
                                               verify_token_not_blocklisted, verify_token_type)
from flask_jwt_extended.view_decorators import (_decode_jwt_from_cookies,
                                                 _decode_jwt_from_headers,
                                                 _decode_jwt_from_json, _load_user)
from jwt.exceptions import (DecodeError, ExpiredSignatureError, ImmatureSignatureError,
                            InvalidIssuedAtError, InvalidIssuerError, InvalidSignatureError,
                            MissingRequiredClaimError)

from auth_service.persistence import queries
from auth_service.extensions import jwt
from auth_service.persistence.models import User

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "jti", "type", "sub", "sid", "ver")
TOKEN_TYPES = ("access", "refresh")
MAX_USER_ID_DIGITS = 18
# Requests that must not change anything (RFC 9110): their user is read, not attached.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    app.config["JWT_IDENTITY_CLAIM"] = "sub"  # what decode_complete and load_user read


def encode(token_type: str, subject: str, claims: dict) -> str:
    """Sign a ``token_type`` token for user id ``subject``: the claims flask-jwt-extended's
    create_access_token and create_refresh_token write, from the same settings
    (JWT_*_TOKEN_EXPIRES, JWT_ENCODE_NBF, JWT_COOKIE_CSRF_PROTECT, JWT_ENCODE_AUDIENCE,
    JWT_ENCODE_ISSUER), then ``claims``, under the one header decode_complete accepts.

    Any HS256 library verifies the result (tests/test_tokens.py checks PyJWT). Done here
    rather than through flask-jwt-extended and PyJWT: half the cost of a refresh's two
    tokens was their generic claim handling and key preparation.
    """
    config = current_app.config
    now = int(time.time())
    # A value ``claims`` overrides is not drawn (each uuid4 is a getrandom call).
    payload = {"fresh": False, "iat": now,
               "jti": claims["jti"] if "jti" in claims else str(uuid.uuid4()),
               "type": token_type, "sub": subject}
    if config["JWT_ENCODE_NBF"]:
        payload["nbf"] = now
    if config["JWT_COOKIE_CSRF_PROTECT"]:
        payload["csrf"] = claims["csrf"] if "csrf" in claims else str(uuid.uuid4())
    if config["JWT_ENCODE_AUDIENCE"]:
        payload["aud"] = config["JWT_ENCODE_AUDIENCE"]
    if config["JWT_ENCODE_ISSUER"]:
        payload["iss"] = config["JWT_ENCODE_ISSUER"]
    payload["exp"] = now + int(config[_LIFETIMES[token_type]].total_seconds())
    payload.update(claims)
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{_HEADER_SEGMENT}.{body}"
    return f"{signing_input}.{_signature(signing_input, config['JWT_SECRET_KEY'])}"


def decode(encoded_token: str, csrf_value: str | None = None,
           allow_expired: bool = False) -> dict:
    """Verify a token and return its claims (auth_service.extensions.JWTManager routes
    flask-jwt-extended's decodes here)."""
    return decode_complete(encoded_token, csrf_value, allow_expired)[1]


def decode_complete(encoded_token: str, csrf_value: str | None = None,
                    allow_expired: bool = False) -> tuple[dict, dict]:
    """Verify a token and return its header and claims, in one parse.

    In order: the header (the one this service issues, byte for byte), the HS256
    signature (compared in constant time), then the claims as PyJWT checks them
    (required, iat, nbf, exp with JWT_DECODE_LEEWAY, iss) and the ones this service
    relies on (type, sub, jti), then the CSRF double-submit value. Errors are PyJWT's
    and flask-jwt-extended's exception classes, so their handlers answer as before.
    An expired token is reported as such only when nothing else is wrong with it.
    """
    config = current_app.config
    claims = _verified_claims(encoded_token, config["JWT_SECRET_KEY"])
    leeway = config["JWT_DECODE_LEEWAY"]
    if isinstance(leeway, timedelta):
        leeway = leeway.total_seconds()
    now = time.time()
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise MissingRequiredClaimError(name)
    if _integer(claims, "iat", InvalidIssuedAtError) > now + leeway:
        raise ImmatureSignatureError("The token is not yet valid (iat)")
    if "nbf" in claims and _integer(claims, "nbf", DecodeError) > now + leeway:
        raise ImmatureSignatureError("The token is not yet valid (nbf)")
    expired = _integer(claims, "exp", DecodeError) <= now - leeway
    issuer = config["JWT_DECODE_ISSUER"]
    if issuer is not None:
        if "iss" not in claims:
            raise MissingRequiredClaimError("iss")
        if claims["iss"] != issuer:
            raise InvalidIssuerError("Invalid issuer")
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
    if expired and not allow_expired:
        error = ExpiredSignatureError("Signature has expired")
        # flask-jwt-extended's expired-token handler reads these two.
        error.jwt_header, error.jwt_data = dict(HEADER), claims
        raise error
    return dict(HEADER), claims


def _verified_claims(encoded_token: str, key: str) -> dict:
    """The payload of a compact HS256 JWS with this service's header, once its signature
    checks out (RFC 7515; RFC 8725 3.1: the algorithm is pinned, not read from the token).

    Anything but the exact header segment this service writes (another alg, none, a
    kid, jku, jwk, x5u, x5c or crit) is refused before the signature is computed; the
    signature must be the canonical unpadded base64url of the HMAC.
    """
    if not isinstance(encoded_token, str):
        raise DecodeError("Invalid token type")
    header, _, rest = encoded_token.partition(".")
    payload, _, signature = rest.partition(".")
    if header != _HEADER_SEGMENT:
        raise DecodeError("Unsupported token header")
    if not (_SEGMENT.fullmatch(payload) and _SEGMENT.fullmatch(signature)) \
            or len(payload) % 4 == 1:
        raise DecodeError("Invalid token segments")
    if not hmac.compare_digest(_signature(f"{header}.{payload}", key), signature):
        raise InvalidSignatureError("Signature verification failed")
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError as error:  # binascii.Error, UnicodeDecodeError, JSONDecodeError
        raise DecodeError("Invalid payload") from error
    if not isinstance(claims, dict):
        raise DecodeError("Invalid payload: must be a JSON object")
    return claims


def _integer(claims: dict, name: str, error: type[Exception]) -> int:
    """A NumericDate claim as PyJWT reads it (int(), so 1.5 and "15" pass)."""
    try:
        return int(claims[name])
    except (ValueError, TypeError, OverflowError):
        raise error(f"The {name} claim must be an integer.") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(signing_input: str, key: str) -> str:
    """The HS256 signature segment of a token (RFC 7518 section 3.2)."""
    return _b64url(hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest())


# The header flask-jwt-extended has PyJWT write (sorted keys, no spaces), as a segment.
HEADER = {"alg": ALGORITHM, "typ": "JWT"}
_HEADER_SEGMENT = _b64url(json.dumps(HEADER, separators=(",", ":"), sort_keys=True).encode())
# Unpadded base64url (RFC 7515 section 2), ASCII only.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_LIFETIMES = {"access": "JWT_ACCESS_TOKEN_EXPIRES", "refresh": "JWT_REFRESH_TOKEN_EXPIRES"}


def verify_token(locations: tuple[str, ...] = ("headers",), refresh: bool = False) -> None:
    """``verify_jwt_in_request(refresh=refresh, locations=locations)``, in one parse.

    flask-jwt-extended's own path parses the token once more for its header after
    decoding it. This one finds the token with its readers (the first of ``locations``
    that has one; a cookie comes with its CSRF header), decodes it once, runs its checks
    and callbacks in its order (type, revocation, custom verification, user lookup) and
    leaves the request context it leaves (current_user, get_jwt, get_jwt_header,
    get_jwt_request_location). flask-jwt-extended is pinned.
    """
    if request.method in jwt_config.exempt_methods:
        return
    check_token(*read_token(locations, refresh))


def read_token(locations: tuple[str, ...], refresh: bool = False) -> tuple[dict, dict, str]:
    """The first step of verify_token: the token found, decoded and of the right type,
    as (header, claims, location). Nothing is read from the database yet."""
    missing = []
    for location in locations:
        try:
            encoded_token, csrf_value = _TOKEN_READERS[location](refresh)
            break
        except NoAuthorizationError as error:
            missing.append(str(error))
    else:
        raise NoAuthorizationError(missing[0] if len(missing) == 1 else
                                   f"Missing JWT in {' or '.join(locations)} "
                                   f"({'; '.join(missing)})")
    header, claims = decode_complete(encoded_token, csrf_value)
    verify_token_type(claims, refresh)
    return header, claims, location


def check_token(header: dict, claims: dict, location: str) -> None:
    """The rest of verify_token: revocation, custom verification, the user."""
    verify_token_not_blocklisted(header, claims)
    custom_verification_for_token(header, claims)
    settle_token(header, claims, location, _load_user(header, claims))


def settle_token(header: dict, claims: dict, location: str, loaded: dict | None) -> None:
    """Record a verified token where flask-jwt-extended keeps it for the request
    (get_jwt, get_jwt_header, get_jwt_request_location, and current_user: ``loaded``
    is its {"loaded_user": user}, or None where the view needs no user)."""
    g._jwt_extended_jwt_user = loaded
    g._jwt_extended_jwt_header = header
    g._jwt_extended_jwt = claims
    g._jwt_extended_jwt_location = location


# flask-jwt-extended's readers of a token (and its CSRF value) from each place it may be.
_TOKEN_READERS = {
    "headers": lambda refresh: _decode_jwt_from_headers(),
    "json": _decode_jwt_from_json,
    "cookies": _decode_jwt_from_cookies,
}


@jwt.user_identity_loader
def user_identity(user: User) -> str:
    """``sub`` is the user id as a string (RFC 7519 requires a string)."""
    return str(user.id)


@jwt.user_lookup_loader
def load_user(header: dict, payload: dict) -> User | None:
    """Deleted, inactive or re-passworded users are refused.

    The user was read with the token's session by is_revoked, which runs first. Only a
    request that may change something gets its user attached to the session: on GET
    and HEAD, current_user is a detached copy, which costs no session at all and
    refuses, loudly, to load a relationship.
    """
    user = g.token_owner
    if user is None or not user.is_active or payload.get("ver") != user.token_version:
        return None
    return user


@jwt.token_in_blocklist_loader
def is_revoked(header: dict, payload: dict) -> bool:
    """A token is revoked when its session is: revoked, expired away or deleted.

    A refresh token must also be a known, unrevoked row. A *spent* one is not reported
    here: the refresh view decides between the grace window and reuse detection. The
    owner comes in the same SELECT (g.token_owner, for load_user, which runs next). A
    database error propagates (fail closed).
    """
    attach = request.method not in SAFE_METHODS
    if payload["type"] == "refresh":
        token = queries.token_with_owner(payload["jti"], attach_owner=attach)
        g.refresh_token_row = token
        g.token_owner = token.user if token is not None else None
        return token is None or token.revoked_at is not None or token.session.revoked_at is not None
    g.token_owner, session = queries.user_with_session(int(payload["sub"]), payload["sid"], attach)
    # An unknown user is load_user's to refuse (as an unknown account, not a revocation).
    return g.token_owner is not None and (session is None or session.revoked_at is not None)
