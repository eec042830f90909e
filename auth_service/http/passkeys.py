"""Passkeys (WebAuthn): registering, signing in, stepping up, listing and removing
(auth_service.services.passkeys and passkey_enrolment).

Each ceremony is two requests: options (with a challenge the server keeps), then what
the browser's navigator.credentials.create() or .get() returned, as JSON.
"""

from __future__ import annotations

from flask import jsonify
from flask_jwt_extended import current_user, get_current_user
from flask_smorest import Blueprint

from auth_service.http.common import aal2_required, access_required, json_required
from auth_service.http.passkey_schemas import (
    AssertionSchema,
    CreationOptionsSchema,
    LoginOptionsRequestSchema,
    PasskeyListSchema,
    PasskeyRegisteredSchema,
    RegistrationCredentialSchema,
    RegistrationOptionsRequestSchema,
    RequestOptionsSchema,
)
from auth_service.http.responses import login_response
from auth_service.http.schemas import ErrorSchema, TokenPairSchema
from auth_service.security import devices, jwt_checks
from auth_service.security.limits import login_limit, password_change_limit
from auth_service.services import mfa, passkey_enrolment, passkeys

blp = Blueprint("passkeys", __name__, description="Passkeys (WebAuthn)")

NOT_CONFIGURED = "Passkeys are not set up here (no WEBAUTHN_RP_ID or PUBLIC_BASE_URL)"
REFUSED = (
    "The assertion was refused: unknown credential, wrong signature, origin or RP ID, no "
    "user verification, a sign count that did not move on, or a used or expired challenge"
)


def _session():
    """The session of the calling access token, as its check read it."""
    return jwt_checks.token_context().session


@blp.route("/auth/passkeys/register/options", methods=["POST"])
@password_change_limit
@access_required(blp)
@aal2_required(blp)
@blp.arguments(RegistrationOptionsRequestSchema(), required=False)
@blp.response(200, CreationOptionsSchema)
@blp.alt_response(
    400,
    schema=ErrorSchema,
    description="Signed in longer ago than REAUTHENTICATION_MAX_AGE and the password is "
    "missing or wrong",
)
@blp.alt_response(404, schema=ErrorSchema, description=NOT_CONFIGURED)
def passkey_registration_options(data):
    """Options for navigator.credentials.create(): a new passkey for this account.

    Within REAUTHENTICATION_MAX_AGE of proving a factor no body is needed; later,
    confirm with ``{"password"}``. ``name`` names the passkey the answer creates.
    """
    options = passkey_enrolment.registration_options(
        current_user, _session(), data.get("name"), data.get("password")
    )
    return jsonify(options)


@blp.route("/auth/passkeys/register", methods=["POST"])
@password_change_limit
@access_required(blp)
@json_required
@blp.arguments(RegistrationCredentialSchema())
@blp.response(
    201,
    PasskeyRegisteredSchema,
    description="The passkey, and a fresh aal2 pair for this session (the first passkey "
    "turns two-step verification on: every other session has ended)",
)
@blp.alt_response(
    400,
    schema=ErrorSchema,
    description="Not a valid answer to a live registration challenge of this account",
)
@blp.alt_response(404, schema=ErrorSchema, description=NOT_CONFIGURED)
@blp.alt_response(409, schema=ErrorSchema, description="The credential is already registered")
def register_passkey(data):
    """Register the credential navigator.credentials.create() returned; emails the account."""
    passkey, pair = passkey_enrolment.register(current_user, _session(), data)
    response = login_response(
        pair,
        status=201,
        id=passkey.id,
        name=passkey.name,
        created_at=passkey.created_at.isoformat(),
    )
    # The new token version voided every device cookie; this browser has just proven both.
    devices.remember(response, get_current_user())
    return response


@blp.route("/auth/passkeys/login/options", methods=["POST"])
@login_limit
@blp.arguments(LoginOptionsRequestSchema(), required=False)
@blp.response(200, RequestOptionsSchema)
@blp.alt_response(404, schema=ErrorSchema, description=NOT_CONFIGURED)
@blp.alt_response(429, schema=ErrorSchema, description="Too many attempts")
def passkey_login_options(data):
    """Options for navigator.credentials.get(): a sign-in, a login's second step or a
    step-up. Without an email the authenticator offers its discoverable credentials."""
    return jsonify(passkeys.login_options(data.get("email")))


@blp.route("/auth/passkeys/login", methods=["POST"])
@login_limit
@json_required
@blp.arguments(AssertionSchema())
@blp.response(200, TokenPairSchema, description="Exactly what POST /auth/login gives, at aal2")
@blp.alt_response(401, schema=ErrorSchema, description=REFUSED)
@blp.alt_response(404, schema=ErrorSchema, description=NOT_CONFIGURED)
@blp.alt_response(429, schema=ErrorSchema, description="Too many attempts or failures")
def passkey_login(data):
    """Sign in with a passkey: a new session at aal2, no second step."""
    user, pair = passkeys.login(data)
    response = login_response(pair)
    devices.remember(response, user)
    return response


@blp.route("/auth/mfa/passkey", methods=["POST"])
@login_limit
@access_required(blp)
@json_required
@blp.arguments(AssertionSchema())
@blp.response(200, TokenPairSchema, description="A fresh aal2 pair for the same session")
@blp.alt_response(400, schema=ErrorSchema, description=REFUSED + ", or not this account's")
@blp.alt_response(409, schema=ErrorSchema, description="Two-step verification is off")
@blp.alt_response(429, schema=ErrorSchema, description="Too many failures (shared with login)")
def passkey_step_up(data):
    """Step up with a passkey: prove it in this session, for the changes that need aal2."""
    return login_response(mfa.step_up(current_user, _session(), passkey=data))


@blp.route("/users/me/passkeys", methods=["GET"])
@access_required(blp)
@blp.response(200, PasskeyListSchema)
def list_passkeys():
    """The caller's passkeys."""
    return {"passkeys": [passkeys.summary(p) for p in passkeys.of_user(current_user.id)]}


@blp.route("/users/me/passkeys/<string:passkey_id>", methods=["DELETE"])
@access_required(blp)
@aal2_required(blp)
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No such passkey of this user")
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="The last way to sign in (no password, provider or other passkey)",
)
def remove_passkey(passkey_id):
    """Remove a passkey; with the last factor goes two-step verification."""
    passkey_enrolment.remove(current_user, passkey_id)
