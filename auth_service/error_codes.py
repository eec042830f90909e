"""Every error the API answers with, in one table: HTTP status, code and default message.

Code elsewhere names a member (``raise APIError(Error.TOKEN_REVOKED)``), never the code's
string. A message may carry ``{placeholders}`` that the raise fills in (``label=...``);
a raise may also replace the message where it has something more specific to say.

``bearer_error`` is the RFC 6750 error a 401 announces in ``WWW-Authenticate``:
``invalid_token`` for the members that refuse a token sent as a bearer credential, none
for the others (a missing token, a wrong password, a provider that said no).

A code names one kind of error; ``invalid_token`` and ``token_expired`` name it for a
bearer token (401, with the challenge) and for an emailed link's token (400).

This module imports nothing from the package: docs/generate_error_codes.py and the tests
read it on its own. docs/api.md's table of error codes is generated from it.
"""

from __future__ import annotations

from enum import Enum, unique

# The code of an error whose status no member stands for (a 416 from a Range request).
UNLISTED_CODE = "error"


@unique
class Error(Enum):
    """An error of the API: ``status``, ``code``, ``message`` and ``bearer_error``."""

    # Plain HTTP errors, whatever raises them (werkzeug, flask-smorest, webargs); a
    # message from the exception wins over the default.
    BAD_REQUEST = 400, "bad_request", "The request body is not valid JSON."
    UNAUTHORIZED = 401, "unauthorized", "Unauthorized"
    FORBIDDEN = 403, "forbidden", "Superuser privileges are required."
    NOT_FOUND = 404, "not_found", "Not Found"
    METHOD_NOT_ALLOWED = 405, "method_not_allowed", "Method Not Allowed"
    CONFLICT = 409, "conflict", "The resource conflicts with an existing one."
    PAYLOAD_TOO_LARGE = 413, "payload_too_large", "The request body exceeds {limit} bytes."
    UNSUPPORTED_MEDIA_TYPE = 415, "unsupported_media_type", "Content-Type must be application/json."
    VALIDATION_ERROR = 422, "validation_error", "The request body or query is invalid."
    RATE_LIMITED = 429, "rate_limited", "Too many requests; try again in {seconds} seconds."
    INTERNAL_ERROR = 500, "internal_error", "Internal Server Error"
    SERVICE_UNAVAILABLE = 503, "service_unavailable", "Service Unavailable"

    # Bearer tokens (flask-jwt-extended's loaders, the refresh and logout views).
    AUTHORIZATION_REQUIRED = 401, "authorization_required", "A bearer token is required."
    # {where}: what the endpoint reads a refresh token from (http/common.py).
    REFRESH_TOKEN_REQUIRED = (
        401,
        "refresh_token_required",
        "A refresh token is required: {where}.",
    )
    INVALID_TOKEN = 401, "invalid_token", "The token is invalid.", "invalid_token"
    TOKEN_EXPIRED = 401, "token_expired", "The token has expired.", "invalid_token"
    TOKEN_REVOKED = 401, "token_revoked", "The token has been revoked.", "invalid_token"
    TOKEN_REUSED = (
        401,
        "token_reused",
        "This refresh token was already used; the session has been revoked. Log in again.",
        "invalid_token",
    )
    FRESH_TOKEN_REQUIRED = 401, "fresh_token_required", "A fresh login is required."
    CSRF_FAILED = 403, "csrf_failed", "Missing or invalid X-CSRF-TOKEN header."
    ORIGIN_NOT_ALLOWED = (
        403,
        "origin_not_allowed",
        "Requests with the refresh cookie are not accepted from this origin.",
    )
    SESSION_NOT_FOUND = 404, "session_not_found", "No such active session."

    # Accounts and passwords.
    INVALID_CREDENTIALS = 401, "invalid_credentials", "Invalid email or password."
    REAUTHENTICATION_REQUIRED = 401, "reauthentication_required", "Sign in again to do this."
    INVALID_PASSWORD = 400, "invalid_password", "The password is incorrect."
    PASSWORD_REQUIRED = 400, "password_required", "Confirm with your password."
    EMAIL_TAKEN = 409, "email_taken", "An account with this email already exists."
    USERNAME_TAKEN = 409, "username_taken", "This username is already taken."
    PASSWORD_CHANGED_CONCURRENTLY = (
        409,
        "password_changed_concurrently",
        "The password was changed by another request; sign in again.",
    )
    LAST_SUPERUSER = 409, "last_superuser", "This is the last active superuser."
    USER_NOT_FOUND = 404, "user_not_found", "No such user."
    CANNOT_DEACTIVATE_SELF = (
        409,
        "cannot_deactivate_self",
        "You cannot deactivate your own account.",
    )
    # DELETE /users/me asks for the password (and a second factor): a stolen superuser
    # token must not skip that through /users/{id}.
    CANNOT_DELETE_SELF = (
        409,
        "cannot_delete_self",
        "Delete your own account with DELETE /users/me.",
    )

    # Emailed links (verification, password reset).
    INVALID_LINK = 400, "invalid_token", "This link is invalid or has already been used."
    LINK_EXPIRED = 400, "token_expired", "This link has expired; ask for a new one."
    EMAIL_ALREADY_VERIFIED = (
        409,
        "email_already_verified",
        "This email address is already verified.",
    )

    # Google and GitHub sign-in: {label} is the provider's name, {reason} its error code.
    PROVIDER_DISABLED = 404, "provider_disabled", "{label} login is not enabled on this server."
    INVALID_REDIRECT = (
        400,
        "invalid_redirect",
        "`next` is not an allowed place to return to after login.",
    )
    INVALID_STATE = (
        400,
        "invalid_state",
        "This sign-in link is missing its state, has expired or was already used. "
        "Start the sign-in again.",
    )
    MISSING_CODE = 400, "missing_code", "The callback from {label} carries no code."
    ISSUER_MISMATCH = 400, "issuer_mismatch", "The callback comes from another issuer."
    PROVIDER_DENIED = 401, "provider_denied", "{label} did not sign you in ({reason})."
    PROVIDER_REJECTED = (
        401,
        "provider_rejected",
        "{label} refused to complete the sign-in ({reason}). Start the sign-in again.",
    )
    INVALID_ID_TOKEN = (
        401,
        "invalid_id_token",
        "{label}'s ID token failed verification ({reason}).",
    )
    PROVIDER_UNREACHABLE = (
        502,
        "provider_unreachable",
        "{label} could not be reached in time; try again later.",
    )
    PROVIDER_ERROR = 502, "provider_error", "{label} gave an unexpected answer; try again later."
    EMAIL_NOT_VERIFIED = (
        403,
        "email_not_verified",
        "{label} does not confirm a verified email address for this account "
        "(GitHub: the primary address must be verified). Verify it at {label} and retry.",
    )
    ACCOUNT_INACTIVE = 403, "account_inactive", "This account has been deactivated."
    SESSION_ENDED = (
        401,
        "session_ended",
        "The session that asked to link {label} has ended. Log in and start again.",
    )
    EMAIL_UNVERIFIED = (
        409,
        "email_unverified",
        "Verify your email address before linking {label} to your account.",
    )
    IDENTITY_IN_USE = (
        409,
        "identity_in_use",
        "This {label} account already signs in to another account.",
    )
    ACCOUNT_EXISTS_UNVERIFIED = (
        409,
        "account_exists_unverified",
        "An account with this email already exists and its email is not verified. "
        "Log in with your password first and verify your email (or reset the password "
        "through /auth/forgot-password, which verifies it), then link {label} from your "
        "account (POST /auth/{provider}/link).",
    )
    PROVIDER_ALREADY_LINKED = (
        409,
        "provider_already_linked",
        "This account is already linked to another {label} identity. Log in and unlink it first.",
    )
    IDENTITY_NOT_FOUND = 404, "identity_not_found", "No {label} identity is linked."
    LAST_SIGN_IN_METHOD = (
        409,
        "last_sign_in_method",
        "{label} is the only way to sign in to this account; link another provider first.",
    )

    # Two-step verification.
    MFA_REQUIRED = (
        403,
        "mfa_required",
        "Confirm with your second factor first (POST /auth/mfa/challenge).",
    )
    INVALID_MFA_TOKEN = (
        401,
        "invalid_mfa_token",
        "The mfa token is invalid, used, expired or out of attempts; sign in again.",
    )
    # The login's second step (401, as a wrong password), and a code proven in a session.
    INVALID_MFA_CODE = 401, "invalid_mfa_code", "The code is wrong, expired or already used."
    WRONG_MFA_CODE = 400, "wrong_mfa_code", "The code is wrong, expired or already used."
    FACTOR_NOT_FOUND = 404, "factor_not_found", "No such factor."
    FACTOR_ALREADY_VERIFIED = 409, "factor_already_verified", "This factor is already verified."
    MFA_NOT_ENABLED = (
        409,
        "mfa_not_enabled",
        "Two-step verification is not turned on for this account.",
    )

    # Passkeys (WebAuthn). Every refused login assertion answers alike, an unknown
    # credential included (as a wrong password does).
    PASSKEYS_DISABLED = (
        404,
        "passkeys_disabled",
        "Passkeys are not set up on this service (WEBAUTHN_RP_ID).",
    )
    INVALID_PASSKEY = (
        401,
        "invalid_passkey",
        "The passkey was not accepted; ask for new options and try again.",
    )
    WRONG_PASSKEY = (
        400,
        "wrong_passkey",
        "The passkey was not accepted; ask for new options and try again.",
    )
    PASSKEY_REGISTRATION_FAILED = (
        400,
        "passkey_registration_failed",
        "The new passkey could not be verified; ask for new options and try again.",
    )
    PASSKEY_ALREADY_REGISTERED = (
        409,
        "passkey_already_registered",
        "This passkey is already registered.",
    )
    PASSKEY_NOT_FOUND = 404, "passkey_not_found", "No such passkey."
    LAST_PASSKEY = (
        409,
        "last_passkey",
        "This passkey is the only way to sign in to this account; add another passkey, "
        "set a password or link a provider first.",
    )

    # What the service depends on.
    DATABASE_UNAVAILABLE = (
        503,
        "database_unavailable",
        "The database is unavailable; try again shortly.",
    )
    RATE_LIMIT_UNAVAILABLE = (
        503,
        "rate_limit_unavailable",
        "Rate limiting is unavailable; try again shortly.",
    )

    def __init__(self, status: int, code: str, message: str, bearer_error: str | None = None):
        self.status, self.code, self.message = status, code, message
        self.bearer_error = bearer_error

    def format(self, **fields: object) -> str:
        """The default message with its ``{placeholders}`` filled in from ``fields``."""
        return self.message.format(**fields)


# The member a plain HTTP error of each status answers with.
FOR_STATUS = {
    member.status: member
    for member in (
        Error.BAD_REQUEST,
        Error.UNAUTHORIZED,
        Error.FORBIDDEN,
        Error.NOT_FOUND,
        Error.METHOD_NOT_ALLOWED,
        Error.CONFLICT,
        Error.PAYLOAD_TOO_LARGE,
        Error.UNSUPPORTED_MEDIA_TYPE,
        Error.VALIDATION_ERROR,
        Error.RATE_LIMITED,
        Error.INTERNAL_ERROR,
        Error.SERVICE_UNAVAILABLE,
    )
}
