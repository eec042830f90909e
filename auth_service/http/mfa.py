"""/auth/mfa and /auth/login/mfa: two-step verification (auth_service.services.mfa).

Enrolment, factors and recovery codes are managed with an access token; the login's
second step takes the mfa token that the first factor earned, from the body or, for a
browser, from its cookie with the CSRF header (as the refresh cookie does).
"""

from __future__ import annotations

import hmac

from flask import current_app, request
from flask_jwt_extended import current_user, get_current_user
from flask_smorest import Blueprint

from auth_service.errors import APIError, Error
from auth_service.http.common import aal2_required, access_required, json_required
from auth_service.http.mfa_schemas import (
    FactorListSchema,
    MfaEnabledSchema,
    MfaLoginSchema,
    OneCodeSchema,
    PendingMfaSchema,
    RecoveryCodesSchema,
    TotpEnrolmentSchema,
    TotpVerifySchema,
)
from auth_service.http.responses import (
    MFA_COOKIE_NAME,
    login_response,
    mfa_csrf_subject,
    unset_mfa_cookie,
)
from auth_service.http.schemas import ErrorSchema, ReauthenticationSchema, TokenPairSchema
from auth_service.persistence.models import utcnow
from auth_service.security import cors, devices, jwt_checks
from auth_service.security.limits import login_limit, password_change_limit
from auth_service.services import mfa, mfa_login, sessions

blp = Blueprint(
    "mfa", __name__, url_prefix="/auth", description="Two-step verification (TOTP, recovery codes)"
)

WRONG_CODE = "Wrong, expired or already used code"


def _session():
    """The session of the calling access token, as its check read it."""
    return jwt_checks.token_context().session


@blp.route("/mfa/totp", methods=["POST"])
@password_change_limit
@access_required(blp)
@aal2_required(blp)
@blp.arguments(ReauthenticationSchema(), required=False)
@blp.response(201, TotpEnrolmentSchema)
@blp.alt_response(
    400,
    schema=ErrorSchema,
    description="Signed in longer ago than REAUTHENTICATION_MAX_AGE and the password is "
    "missing or wrong",
)
@blp.alt_response(
    401,
    schema=ErrorSchema,
    description="A password-less account signed in longer ago than "
    "REAUTHENTICATION_MAX_AGE: sign in again",
)
def start_totp(data):
    """Start enrolling an authenticator app: its secret, URI and QR code.

    The factor works once verified with its first code; a new call replaces an
    enrolment still unverified. Within REAUTHENTICATION_MAX_AGE of signing in no body is
    needed; later, confirm with ``{"password"}``.
    """
    return mfa.start_totp(current_user, _session(), data.get("password"))


@blp.route("/mfa/totp/verify", methods=["POST"])
@password_change_limit
@access_required(blp)
@json_required
@blp.arguments(TotpVerifySchema())
@blp.response(
    200,
    MfaEnabledSchema,
    description="A fresh aal2 pair for this session (every other session has ended) "
    "and ten recovery codes, shown once (any earlier set stops working)",
)
@blp.alt_response(400, schema=ErrorSchema, description=WRONG_CODE)
@blp.alt_response(404, schema=ErrorSchema, description="No such factor of this user")
@blp.alt_response(409, schema=ErrorSchema, description="The factor is already verified")
def verify_totp(data):
    """Verify an enrolment with the app's first code: two-step verification is on."""
    pair, codes = mfa.verify_totp(current_user, _session(), data["factor_id"], data["code"])
    response = login_response(pair, recovery_codes=codes)
    # The new token version voided every device cookie; this browser has just proven both.
    devices.remember(response, get_current_user())
    return response


@blp.route("/mfa/factors", methods=["GET"])
@access_required(blp)
@blp.response(200, FactorListSchema)
def list_factors():
    """The caller's factors and how many recovery codes are left."""
    return mfa.list_factors(current_user)


@blp.route("/mfa/factors/<string:factor_id>", methods=["DELETE"])
@access_required(blp)
@aal2_required(blp)
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No such factor of this user")
def remove_factor(factor_id):
    """Remove a factor; with the last one go the recovery codes (two-step verification off)."""
    mfa.remove_factor(current_user, factor_id)


@blp.route("/mfa/recovery-codes", methods=["POST"])
@password_change_limit
@access_required(blp)
@aal2_required(blp)
@blp.response(200, RecoveryCodesSchema, description="Shown once; the earlier codes stop working")
@blp.alt_response(409, schema=ErrorSchema, description="Two-step verification is off")
def new_recovery_codes():
    """A new set of ten recovery codes."""
    return {"recovery_codes": mfa.new_recovery_codes(current_user)}


@blp.route("/mfa/challenge", methods=["POST"])
@login_limit
@access_required(blp)
@json_required
@blp.arguments(OneCodeSchema())
@blp.response(200, TokenPairSchema, description="A fresh aal2 pair for the same session")
@blp.alt_response(400, schema=ErrorSchema, description=WRONG_CODE)
@blp.alt_response(409, schema=ErrorSchema, description="Two-step verification is off")
@blp.alt_response(429, schema=ErrorSchema, description="Too many wrong codes (shared with login)")
def challenge(data):
    """Step up: prove a second factor in this session, for the changes that need aal2."""
    pair = mfa.step_up(current_user, _session(), data.get("code"), data.get("recovery_code"))
    return login_response(pair)


@blp.route("/login/mfa", methods=["GET"])
@login_limit
@blp.response(200, PendingMfaSchema)
@blp.alt_response(401, schema=ErrorSchema, description="No live mfa token cookie")
@blp.alt_response(403, schema=ErrorSchema, description="From an Origin not on CORS_ORIGINS")
def pending_login():
    """For a page that has just loaded (after Google/GitHub): the pending second step of
    the mfa token cookie, and the X-CSRF-TOKEN value to post it with."""
    token = request.cookies.get(MFA_COOKIE_NAME)
    if not token:
        raise APIError(Error.INVALID_MFA_TOKEN)
    cors.refuse_foreign_origin()
    pending = mfa_login.pending(token)
    return {
        "expires_in": max(0, int((pending.expires_at - utcnow()).total_seconds())),
        "methods": mfa.methods(pending.user_id),
        "csrf_token": sessions.csrf_value(mfa_csrf_subject(token)),
    }


@blp.route("/login/mfa", methods=["POST"])
@login_limit
@json_required
@blp.arguments(MfaLoginSchema())
@blp.response(200, TokenPairSchema, description="Exactly what POST /auth/login gives, at aal2")
@blp.alt_response(
    401, schema=ErrorSchema, description="Invalid, used or expired mfa token; wrong code"
)
@blp.alt_response(
    403,
    schema=ErrorSchema,
    description="The cookie without a matching X-CSRF-TOKEN header, or from an Origin "
    "not on CORS_ORIGINS",
)
@blp.alt_response(429, schema=ErrorSchema, description="Too many wrong codes (shared with login)")
def login_mfa(data):
    """Finish a login with the second factor: a TOTP code, a recovery code or a passkey."""
    token = data.get("mfa_token") or _mfa_cookie()
    user, pair = mfa_login.finish(
        token, data.get("code"), data.get("recovery_code"), data.get("passkey")
    )
    response = login_response(pair)
    unset_mfa_cookie(response)
    devices.remember(response, user)
    return response


def _mfa_cookie() -> str:
    """The mfa token of the cookie, once the Origin and the CSRF header say that the
    page sending it is one that may (the value comes from GET /auth/login/mfa)."""
    token = request.cookies.get(MFA_COOKIE_NAME)
    if not token:
        raise APIError(Error.INVALID_MFA_TOKEN)
    cors.refuse_foreign_origin()
    presented = request.headers.get(current_app.config["JWT_REFRESH_CSRF_HEADER_NAME"], "")
    expected = sessions.csrf_value(mfa_csrf_subject(token))
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise APIError(Error.CSRF_FAILED)
    return token
