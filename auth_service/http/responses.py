"""The answers that hand out credentials: a token pair, or the login's second step.

A login (password, Google/GitHub, the second step) and the changes that start a new
pair (password change, step-up) answer alike, so a client handles one shape.
"""

from __future__ import annotations

from flask import Response, current_app, jsonify

from auth_service.http.common import set_refresh_cookies
from auth_service.security.second_factors import mfa_token_digest
from auth_service.services import sessions

# The cookie that carries an mfa token to POST /auth/login/mfa, and nowhere else.
MFA_COOKIE_NAME = "mfa_token"
MFA_COOKIE_PATH = "/auth/login/mfa"


def token_response(
    pair: sessions.TokenPair, *, body: bool, cookie: bool, status: int = 200, **extra
):
    """Serialize a token pair; the refresh token goes in the body, the cookie, or both.
    ``extra`` fields join the body (the recovery codes of an enrolment)."""
    payload = {
        "access_token": pair.access_token,
        "token_type": "bearer",
        "expires_in": int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()),
        **extra,
    }
    if body:
        payload["refresh_token"] = pair.refresh_token
    if cookie:
        # A page on another site cannot read the CSRF cookie: it gets the value here.
        payload["csrf_token"] = pair.csrf
    response = jsonify(payload)
    response.status_code = status
    if cookie:
        set_refresh_cookies(response, pair)
    return response


def login_response(pair: sessions.TokenPair, status: int = 200, **extra):
    """Logins, password change and step-up hand out the refresh token as
    LOGIN_REFRESH_TRANSPORT says."""
    transport = current_app.config["LOGIN_REFRESH_TRANSPORT"]
    return token_response(
        pair, body=transport != "cookie", cookie=transport != "body", status=status, **extra
    )


def mfa_required_response(token: str, methods: list[str]):
    """The login's answer for an account with two-step verification on: the mfa token,
    and no token pair and no cookie at all (a Google/GitHub callback that redirects sets
    the mfa cookie instead: there the page cannot read a body)."""
    return jsonify(
        mfa_required=True,
        mfa_token=token,
        expires_in=int(current_app.config["MFA_TOKEN_EXPIRES"].total_seconds()),
        methods=methods,
    )


def set_mfa_cookie(response: Response, token: str) -> None:
    """The mfa token as an HttpOnly cookie that only POST /auth/login/mfa receives, with
    the refresh cookie's Secure, SameSite and Domain."""
    config = current_app.config
    response.set_cookie(
        MFA_COOKIE_NAME,
        token,
        max_age=int(config["MFA_TOKEN_EXPIRES"].total_seconds()),
        path=MFA_COOKIE_PATH,
        domain=config["JWT_COOKIE_DOMAIN"],
        secure=config["JWT_COOKIE_SECURE"],
        httponly=True,
        samesite=config["JWT_COOKIE_SAMESITE"],
    )


def unset_mfa_cookie(response: Response) -> None:
    config = current_app.config
    response.delete_cookie(
        MFA_COOKIE_NAME,
        path=MFA_COOKIE_PATH,
        domain=config["JWT_COOKIE_DOMAIN"],
        secure=config["JWT_COOKIE_SECURE"],
        httponly=True,
        samesite=config["JWT_COOKIE_SAMESITE"],
    )


def mfa_csrf_subject(token: str) -> str:
    """What the CSRF value of an mfa cookie is derived from (never a session id)."""
    return "mfa:" + mfa_token_digest(token)
