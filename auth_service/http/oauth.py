"""Google and GitHub login (OpenID Connect / OAuth 2), ending in the same session a password login gives.

``GET /auth/{provider}/login`` redirects to the provider; the provider sends the
browser back to ``GET /auth/{provider}/callback``, which signs the user in
(auth_service.services.identities) and then either redirects to the frontend with the
refresh + CSRF cookies set (FRONTEND_URL, or an allow-listed ``next``; never a
token in the URL) or answers JSON like ``POST /auth/login``.

``POST /auth/{provider}/link`` (signed in) starts the same dance to link the
provider to the caller's account instead: its callback links and starts no session.
"""

from __future__ import annotations

from flask import current_app, jsonify, redirect, request, session, url_for
from flask_jwt_extended import current_user, get_jwt
from flask_smorest import Blueprint

from auth_service.errors import APIError, Error
from auth_service.http.common import aal2_required, access_required, set_refresh_cookies
from auth_service.http.responses import (
    login_response,
    mfa_required_response,
    set_mfa_cookie,
)
from auth_service.http.schemas import (
    AuthorizationURLSchema,
    ErrorSchema,
    OAuthCallbackQuerySchema,
    OAuthLoginQuerySchema,
    ProvidersSchema,
    ReauthenticationSchema,
    TokenPairSchema,
)
from auth_service.integrations import oauth_providers
from auth_service.security import devices, jwt_checks, redirects
from auth_service.security.limits import oauth_limit
from auth_service.services import accounts, identities, mfa, mfa_login, sessions

blp = Blueprint("oauth", __name__, url_prefix="/auth", description="Google and GitHub login")

PROVIDER = "<any(google, github):provider>"
# Session key of the allow-listed ``next`` of one login attempt (by its state).
NEXT_KEY = "oauth_next_"
# Session key of a link attempt (by its state): who asked, at which token version.
LINK_KEY = "oauth_link_"


@blp.route("/providers", methods=["GET"])
@blp.response(200, ProvidersSchema)
def providers():
    """The login providers enabled on this server (client id and secret configured)."""
    return {
        "providers": [
            {"name": name, "login_url": url_for("oauth.login", provider=name)}
            for name in oauth_providers.enabled_providers(current_app.config)
        ]
    }


def _callback_url(provider: str) -> str:
    """The redirect URI registered at the provider."""
    base = current_app.config["OAUTH_CALLBACK_BASE_URL"]
    if base:
        return base.rstrip("/") + url_for("oauth.callback", provider=provider)
    return url_for("oauth.callback", provider=provider, _external=True)


@blp.route(f"/{PROVIDER}/login", methods=["GET"])
@oauth_limit
@blp.arguments(OAuthLoginQuerySchema(), location="query")
@blp.response(302, description="Redirect to the provider's sign-in page (state, nonce, PKCE S256)")
@blp.alt_response(400, schema=ErrorSchema, description="``next`` is not on the allow-list")
@blp.alt_response(404, schema=ErrorSchema, description="Provider not enabled on this server")
@blp.alt_response(502, schema=ErrorSchema, description="Provider unreachable (discovery)")
def login(query, provider):
    """Start a Google or GitHub login: redirect the browser to the provider."""
    response, _ = _start(provider, query.get("next"))
    return response


@blp.route(f"/{PROVIDER}/link", methods=["POST"])
@access_required(blp)
@aal2_required(blp)
@oauth_limit
@blp.arguments(OAuthLoginQuerySchema(), location="query")
@blp.arguments(ReauthenticationSchema(), required=False)
@blp.response(
    200,
    AuthorizationURLSchema,
    description="Where to send the browser; the "
    "callback links the identity to the caller's account (password and sessions kept)",
)
@blp.alt_response(
    400,
    schema=ErrorSchema,
    description="``next`` is not on the allow-list, or the password is missing or wrong",
)
@blp.alt_response(
    401,
    schema=ErrorSchema,
    description="A password-less account signed in too "
    "long ago (REAUTHENTICATION_MAX_AGE): sign in again",
)
@blp.alt_response(404, schema=ErrorSchema, description="Provider not enabled on this server")
@blp.alt_response(502, schema=ErrorSchema, description="Provider unreachable (discovery)")
def link(query, body, provider):
    """Start linking Google or GitHub to the signed-in account: the URL to open in the browser.

    Confirmed with the password (or a recent sign-in): a stolen access token must not
    turn into a sign-in method that outlives it.
    """
    accounts.reauthenticate(
        current_user, jwt_checks.token_context().session.created_at, body.get("password")
    )
    response, state = _start(provider, query.get("next"))
    session[LINK_KEY + state] = {
        "user": current_user.id,
        "ver": current_user.token_version,
        "sid": get_jwt()["sid"],
    }
    return {"authorization_url": response.headers["Location"]}


def _start(provider: str, next_url: str | None):
    """The redirect to the provider and its state, with an allow-listed ``next`` remembered."""
    oauth_providers.client_for(provider)
    if next_url is not None and not redirects.is_allowed(
        next_url, current_app.extensions["auth_service.redirect_allowlist"]
    ):
        raise APIError(Error.INVALID_REDIRECT)
    response, state = oauth_providers.authorize_redirect(provider, _callback_url(provider))
    if next_url is not None:
        session[NEXT_KEY + state] = next_url
    return response, state


@blp.route(f"/{PROVIDER}/callback", methods=["GET"])
@oauth_limit
@blp.arguments(OAuthCallbackQuerySchema(), location="query")
@blp.response(
    200,
    TokenPairSchema,
    description="Token pair like /auth/login (no FRONTEND_URL "
    "and no ``next``); also sets the refresh and CSRF cookies. Finishing a link: "
    '``{"message"}`` only, no session started. Two-step verification on: the '
    "``mfa_required`` answer of /auth/login",
)
@blp.alt_response(
    302,
    description="Redirect to FRONTEND_URL or the login's ``next``, with the "
    "refresh and CSRF cookies set (not after a link) and no token in the URL. An "
    "account with two-step verification on: to FRONTEND_URL/mfa (or ``next``) with the "
    "``mfa_token`` cookie instead, and no session yet",
)
@blp.alt_response(
    400, schema=ErrorSchema, description="Missing, mismatched or spent state; no code"
)
@blp.alt_response(
    401,
    schema=ErrorSchema,
    description="Refused at the provider, code refused, "
    "or ID token invalid (signature, nonce, audience, issuer, expiry)",
)
@blp.alt_response(403, schema=ErrorSchema, description="No verified email, or account deactivated")
@blp.alt_response(404, schema=ErrorSchema, description="Provider not enabled on this server")
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="An account with this email exists but its "
    "email is unverified: log in with the password first; or, finishing a link, "
    "the identity or provider is taken or the account's email is unverified",
)
@blp.alt_response(502, schema=ErrorSchema, description="Provider unreachable or answered garbage")
def callback(query, provider):
    """Finish a Google or GitHub login and start a session (or finish a link, with no session)."""
    oauth_providers.client_for(provider)
    state = request.args.get("state", "")
    next_url = session.pop(NEXT_KEY + state, None)
    linking = session.pop(LINK_KEY + state, None)
    profile = oauth_providers.fetch_profile(provider)
    if linking is not None:
        identities.link_signed_in(linking["user"], linking["ver"], linking["sid"], profile)
        target = next_url or current_app.config["FRONTEND_URL"]
        if target:
            return redirect(target, code=302)
        return jsonify(message=f"{oauth_providers.LABELS[provider]} is now linked to your account.")
    user = identities.sign_in(profile)
    if mfa.enrolled(user):
        return _second_step(user, next_url)
    pair = sessions.start_session(user, [sessions.FEDERATED])
    target = next_url or current_app.config["FRONTEND_URL"]
    if target:
        response = redirect(target, code=302)
        set_refresh_cookies(response, pair)
        response.headers["Cache-Control"] = "no-store"
    else:
        response = login_response(pair)
    devices.remember(response, user)
    return response


def _second_step(user, next_url: str | None):
    """An account with two-step verification on: no session yet. The browser goes to
    FRONTEND_URL/mfa (or the login's ``next``) with the mfa token in its cookie, never
    in the URL; without either, the JSON answer of POST /auth/login."""
    token = mfa_login.begin(user, sessions.FEDERATED)
    frontend = current_app.config["FRONTEND_URL"]
    target = frontend.rstrip("/") + "/mfa" if frontend else next_url
    if not target:
        return mfa_required_response(token, mfa.methods(user.id))
    response = redirect(target, code=302)
    set_mfa_cookie(response, token)
    response.headers["Cache-Control"] = "no-store"
    return response
