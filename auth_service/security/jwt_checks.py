"""Tokens through flask-jwt-extended: its settings, and what a verified token stands for.

Keys come from auth_service.security.signing_keys; tokens are written by
auth_service.security.token_issuing, and their form (header, claims, the key that
verifies them) is checked by auth_service.security.token_form before the signature.
This module is what follows a valid signature: ``token_in_blocklist_loader`` ties every
token to its session row, and a refresh token to its own row, and refuses a key revoked
since this process read its keys; ``user_lookup_loader`` to an active account at the
token's version.

The rows these checks read form the request's ``TokenContext``, one object that the
loaders, the views and the request log share.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g, request
from jwt.exceptions import DecodeError

from auth_service.extensions import jwt
from auth_service.persistence import queries
from auth_service.persistence.models import RefreshToken, Session, User, utcnow

# token_form and token_issuing: imported for the flask-jwt-extended loaders they register.
from auth_service.security import key_material, signing_keys, token_form, token_issuing  # noqa: F401
from auth_service.security.token_form import UNUSABLE_KEY, key_id

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
        token, key_revoked = queries.token_with_owner(
            claims["jti"], int(claims["sub"]), claims["sid"], kid, attach_owner=attach
        )
        if token is None:
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
