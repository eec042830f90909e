"""/auth: signup, login, refresh, logout, sessions, password change."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_jwt_extended import (
    current_user,
    decode_token,
    get_current_user,
    get_jwt,
    get_jwt_request_location,
    unset_refresh_cookies,
)
from flask_jwt_extended.exceptions import CSRFError
from flask_smorest import Blueprint

from auth_service.errors import APIError, Error
from auth_service.http.common import aal2_required, access_required, json_required, token_required
from auth_service.http.mfa_schemas import MfaRequiredSchema
from auth_service.http.responses import login_response, mfa_required_response, token_response
from auth_service.http.schemas import (
    ChangePasswordSchema,
    CsrfSchema,
    ErrorSchema,
    LoginSchema,
    MessageSchema,
    RefreshRequestSchema,
    SessionSchema,
    SignupSchema,
    TokenInfoSchema,
    TokenPairSchema,
    UserSchema,
)
from auth_service.observability import metrics, prometheus
from auth_service.security import cors, devices, jwt_checks, token_form
from auth_service.security.limits import (
    login_limit,
    password_change_limit,
    refresh_limit,
    signup_limit,
)
from auth_service.services import (
    account_emails,
    accounts,
    audit,
    mfa,
    mfa_login,
    rotation,
    sessions,
)

blp = Blueprint(
    "auth", __name__, url_prefix="/auth", description="Email/password authentication and tokens"
)

REFRESH_SECURITY = [{"refreshCookie": [], "csrfHeader": []}, {}]


@blp.route("/signup", methods=["POST"])
@signup_limit
@json_required
@blp.arguments(SignupSchema())
@blp.response(201, UserSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Email or username already taken")
@blp.alt_response(415, schema=ErrorSchema, description="Body is not JSON")
def signup(data):
    """Register a new account with email and password; a verification email follows."""
    user = accounts.create_user(**data)
    account_emails.send_verification(user)
    return user


@blp.route("/login", methods=["POST"])
@prometheus.counts_login
@login_limit
@json_required
@blp.arguments(LoginSchema())
@blp.response(
    200,
    {"oneOf": [TokenPairSchema, MfaRequiredSchema]},
    description="Token pair; also sets the refresh and CSRF "
    "cookies, and the device cookie that exempts this browser from the account's "
    "failure limit. With two-step verification on: no token and no refresh cookie, "
    "but ``mfa_required`` and an ``mfa_token`` for POST /auth/login/mfa (also as the "
    "``mfa_token`` cookie where the refresh token would travel in one)",
)
@blp.alt_response(401, schema=ErrorSchema, description="Invalid email or password")
@blp.alt_response(429, schema=ErrorSchema, description="Too many attempts or wrong passwords")
def login(data):
    """Log in with email and password and start a new session (or its second step)."""
    user = accounts.authenticate(data["email"], data["password"])
    if mfa.enrolled(user):
        metrics.login("mfa_challenge")
        return mfa_required_response(mfa_login.begin(user, sessions.PASSWORD), mfa.methods(user.id))
    response = login_response(sessions.start_session(user, [sessions.PASSWORD]))
    devices.remember(response, user)
    metrics.login("success")
    return response


@blp.route("/refresh", methods=["POST"])
@refresh_limit
@blp.arguments(RefreshRequestSchema(), required=False)
@blp.response(
    200,
    TokenPairSchema,
    description="New access token and the rotated refresh token "
    "(in the body when it came in the body, in the cookie when it came in the cookie)",
)
@blp.alt_response(
    401, schema=ErrorSchema, description="Invalid, expired, revoked or reused refresh token"
)
@blp.alt_response(
    403,
    schema=ErrorSchema,
    description="Cookie without a matching X-CSRF-TOKEN "
    "header, or from an Origin not on CORS_ORIGINS",
)
@blp.doc(security=REFRESH_SECURITY)
@prometheus.counts_refresh
@token_required(("json", "cookies"), refresh=True)
def refresh(data):
    """Exchange a refresh token for a new pair; the presented token is spent."""
    via_cookie = get_jwt_request_location() == "cookies"
    if via_cookie:
        cors.refuse_foreign_origin()
    pair = rotation.rotate(current_user, jwt_checks.token_context().refresh_token)
    return token_response(pair, body=not via_cookie, cookie=via_cookie)


@blp.route("/csrf", methods=["GET"])
@refresh_limit
@blp.response(200, CsrfSchema)
@blp.alt_response(401, schema=ErrorSchema, description="No valid refresh cookie")
@blp.alt_response(403, schema=ErrorSchema, description="From an Origin not on CORS_ORIGINS")
@blp.doc(security=[{"refreshCookie": []}])
@token_required(("cookies",), refresh=True)
def csrf_token():
    """The X-CSRF-TOKEN value of the refresh cookie, for a page that has just loaded.

    After a reload or the redirect back from Google/GitHub a single-page app holds no
    CSRF value, and on another site it cannot read the CSRF cookie. Only pages on
    CORS_ORIGINS (or this origin) can read the answer.
    """
    cors.refuse_foreign_origin()
    return {"csrf_token": get_jwt()["csrf"]}


def _presented_refresh_token(data: dict) -> dict | None:
    """Decode the refresh token given in the body or the cookie (with its CSRF header)."""
    encoded = data.get("refresh_token")
    csrf = None
    if not encoded:
        encoded = request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"])
        if not encoded:
            return None
        cors.refuse_foreign_origin()
        csrf = request.headers.get(current_app.config["JWT_REFRESH_CSRF_HEADER_NAME"])
        if not csrf:
            raise CSRFError("Missing CSRF token")
    # An expired refresh token can still end its session.
    token_form.check_compact_form(encoded)
    payload = decode_token(encoded, csrf_value=csrf, allow_expired=True)
    if payload["type"] != "refresh" or payload["sub"] != str(current_user.id):
        raise APIError(Error.INVALID_TOKEN, "The refresh token does not belong to this user.")
    return payload


@blp.route("/logout", methods=["POST"])
@access_required(blp)
@blp.arguments(RefreshRequestSchema(), required=False)
@blp.response(200, MessageSchema)
@blp.alt_response(
    403,
    schema=ErrorSchema,
    description="Cookie without a matching X-CSRF-TOKEN "
    "header, or from an Origin not on CORS_ORIGINS",
)
def logout(data):
    """End one session: revoke the refresh token's family (body or cookie) and clear cookies.

    Without a refresh token, the session of the access token is ended.
    """
    payload = _presented_refresh_token(data)
    family = payload["sid"] if payload else get_jwt()["sid"]
    if sessions.revoke_family(family, sessions.REASON_LOGOUT):
        audit.record(audit.LOGOUT, current_user.id, session_id=family)
    response = jsonify(message="Logged out.")
    unset_refresh_cookies(response)
    return response


@blp.route("/logout-all", methods=["POST"])
@blp.response(200, MessageSchema)
@access_required(blp)
def logout_all():
    """Revoke every refresh token of the user (log out of all devices)."""
    count = sessions.revoke_user_tokens(current_user.id, sessions.REASON_LOGOUT_ALL)
    audit.record(audit.LOGOUT_ALL, current_user.id, details={"sessions": count})
    response = jsonify(message=f"Logged out of all sessions ({count} revoked).")
    unset_refresh_cookies(response)
    return response


@blp.route("/me", methods=["GET"])
@blp.response(200, UserSchema)
@access_required(blp)
def me():
    """The profile of the calling user."""
    # The User itself, not the current_user proxy: the schema reads every field, and
    # through the proxy each read re-resolves the user from the request context.
    return get_current_user()


@blp.route("/change-password", methods=["PUT"])
@password_change_limit
@access_required(blp)
@aal2_required(blp)
@json_required
@blp.arguments(ChangePasswordSchema())
@blp.response(
    200, TokenPairSchema, description="A fresh pair for this session; all others are revoked"
)
@blp.alt_response(400, schema=ErrorSchema, description="Current password is incorrect")
@blp.alt_response(
    429, schema=ErrorSchema, description="Too many attempts or wrong passwords (shared with login)"
)
def change_password(data):
    """Change the password; every other session and older access token stops working."""
    pair = accounts.change_password(
        current_user,
        jwt_checks.token_context().session,
        data["current_password"],
        data["new_password"],
    )
    account_emails.send_password_changed(current_user)
    response = login_response(pair)
    # The change voided every device cookie; this browser has just proved the password.
    devices.remember(response, get_current_user())
    return response


@blp.route("/token-info", methods=["GET"])
@blp.response(200, TokenInfoSchema)
def token_info():
    """How access and refresh tokens work here, from the live configuration."""
    config = current_app.config
    return {
        "access_token": {
            "lifetime_seconds": int(config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()),
            "purpose": "Authenticate API requests.",
            "transport": "Authorization: Bearer <access_token>",
            "storage": "Client memory only (not localStorage).",
            "stored_server_side": False,
            "algorithm": config["JWT_ALGORITHM"],
            "revoked_by": "expiry; refused at once when its session ends (logout, "
            "logout-all, session revocation, reuse detection) or the account "
            "is deactivated, deleted or its password changes",
        },
        "refresh_token": {
            "lifetime_seconds": int(config["JWT_REFRESH_TOKEN_EXPIRES"].total_seconds()),
            "purpose": "Obtain a new access token at POST /auth/refresh.",
            "transport": 'JSON body {"refresh_token"} for API clients, or the HttpOnly '
            f"cookie {config['JWT_REFRESH_COOKIE_NAME']} plus the "
            f"{config['JWT_REFRESH_CSRF_HEADER_NAME']} header for browsers.",
            "storage": "HttpOnly cookie (browsers) or secure storage (API clients).",
            "stored_server_side": True,
            "cookie": {
                "name": config["JWT_REFRESH_COOKIE_NAME"],
                "path": config["JWT_REFRESH_COOKIE_PATH"],
                "secure": config["JWT_COOKIE_SECURE"],
                "samesite": config["JWT_COOKIE_SAMESITE"],
                "http_only": True,
                "csrf_cookie": config["JWT_REFRESH_CSRF_COOKIE_NAME"],
            },
        },
        "rotation": {
            "enabled": True,
            "reuse_grace_seconds": config["REFRESH_REUSE_GRACE_SECONDS"],
            "description": "Each refresh spends the token and returns a new one. A spent "
            "token presented again inside the grace window gets the new one "
            "once; any other reuse revokes the whole session. "
            "The session's absolute expiry does not move with rotation.",
        },
    }


@blp.route("/active-sessions", methods=["GET"])
@blp.response(200, SessionSchema(many=True))
@access_required(blp)
def active_sessions():
    """The user's live sessions; ``current`` marks the calling one."""
    current_sid = get_jwt()["sid"]
    listed = sessions.list_sessions(current_user)
    for session in listed:
        session["current"] = session["id"] == current_sid
    return listed


@blp.route("/active-sessions/<string:session_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No such session of this user")
@access_required(blp)
def revoke_session(session_id):
    """Revoke one of the user's own sessions."""
    sessions.revoke_session(current_user, session_id)
