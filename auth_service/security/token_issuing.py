"""Issuing tokens: every token is signed by the current key (signing_keys) and names it
in ``kid``.

Access tokens follow RFC 9068 (``typ: at+jwt``, ``iss``, ``aud``, ``client_id``) and are
written by PyJWT: flask-jwt-extended would add ``fresh`` and ``csrf`` claims that have no
place in a token resource servers read. Refresh tokens are flask-jwt-extended's, signed
through its documented hooks (``encode_key_loader``, ``additional_headers_loader``).
"""

from __future__ import annotations

from datetime import timedelta

import jwt as pyjwt
from flask import current_app
from flask_jwt_extended import create_refresh_token

from auth_service.extensions import jwt
from auth_service.persistence.models import Session, User, new_uuid, utcnow
from auth_service.security import signing_keys
from auth_service.security.token_form import ACCESS_TYP, CLIENT_ID, REFRESH_TYP


def audience() -> str | list[str]:
    """The ``aud`` of access tokens: one string for one audience (RFC 7519 allows both)."""
    audiences = list(current_app.config["JWT_AUDIENCE"])
    return audiences[0] if len(audiences) == 1 else audiences


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
