"""Marshmallow schemas: they validate requests and document the API."""

import marshmallow as ma
from flask import current_app
from flask_jwt_extended import current_user
from marshmallow import fields, validate, validates_schema

from auth_service.security.addresses import InvalidEmail, normalize_email
from auth_service.security.passwords import guessability_problem

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,50}$"
# Upper bound for passwords presented at login; the policy itself applies when one is set.
LOGIN_PASSWORD_MAX = 1024


# What Text enforces, as a JSON Schema pattern for the OpenAPI document.
NO_NUL_PATTERN = r"^[^\x00]*$"


class Text(fields.String):
    """A string that refuses NUL bytes (PostgreSQL cannot store them) and lone surrogates."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ma.ValidationError("Must not contain NUL characters.")
        try:
            # JSON "\ud800" decodes to a str that cannot be encoded (argon2, JWT, drivers).
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ma.ValidationError("Must be valid Unicode text.") from None
        return text


def _canonical_email(value):
    """An email field's input in its canonical form, or the field's 422 message."""
    if not isinstance(value, str):
        return value  # the String field refuses it with its own message
    try:
        return normalize_email(value)
    except InvalidEmail as exc:
        raise ma.ValidationError(str(exc)) from None


class NormalizedEmail(fields.Email):
    """An email address in its canonical form (auth_service.security.addresses), so one mailbox is
    one account however it is spelled."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Length(max=254), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(_canonical_email(value), attr, data, **kwargs)


class LoginEmail(Text):
    """The email a login names, in its canonical form; its syntax is not checked, so an
    account created under older rules can still sign in."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Length(min=1, max=254), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return _canonical_email(super()._deserialize(value, attr, data, **kwargs))


def password_policy(password: str) -> None:
    """Length only (NIST 800-63B): no composition rules."""
    low, high = current_app.config["PASSWORD_MIN_LENGTH"], current_app.config["PASSWORD_MAX_LENGTH"]
    if not low <= len(password) <= high:
        raise ma.ValidationError(f"Password must be {low} to {high} characters long.")


def openapi_attribute_functions(config) -> list:
    """apispec attribute functions documenting the checks the fields make in code.

    ``config`` is the app's: the password policy is documented as configured.
    """

    def text2properties(converter, field, ret, **_):
        """Text refuses NUL; a field with its own pattern (username) already excludes it."""
        if isinstance(field, Text) and "pattern" not in ret:
            return {"pattern": NO_NUL_PATTERN}
        return {}

    def password_policy2properties(converter, field, **_):
        """The live PASSWORD_MIN/MAX_LENGTH on every new-password field."""
        if password_policy in field.validators:
            return {
                "minLength": config["PASSWORD_MIN_LENGTH"],
                "maxLength": config["PASSWORD_MAX_LENGTH"],
            }
        return {}

    return [text2properties, password_policy2properties]


def PasswordField(**kwargs):
    """A new password: write-only, checked against the policy."""
    kwargs.setdefault("required", True)
    return Text(
        load_only=True,
        validate=password_policy,
        metadata={"description": "8 to 128 characters by default (PASSWORD_MIN/MAX_LENGTH)."},
        **kwargs,
    )


def Username(**kwargs):
    """3-50 letters, digits, '_', '.' or '-'."""
    return Text(
        validate=validate.Regexp(
            USERNAME_PATTERN,
            error="Username must be 3-50 characters of letters, digits, '_', '.' or '-'.",
        ),
        **kwargs,
    )


def FullName(**kwargs):
    """Display name, up to 100 characters."""
    return Text(validate=validate.Length(max=100), allow_none=True, **kwargs)


class ErrorSchema(ma.Schema):
    """The one error shape of the whole API."""

    code = fields.Integer(metadata={"description": "HTTP status code"})
    status = fields.String(metadata={"description": "HTTP status name"})
    error = fields.String(metadata={"description": "Machine-readable error code"})
    message = fields.String(metadata={"description": "Human-readable explanation"})
    errors = fields.Dict(metadata={"description": "Per-location, per-field messages"})


def refuse_guessable(password: str, field_name: str, user_inputs: list[str | None]) -> None:
    """Refuse common or account-derived passwords (once the length policy passed)."""
    problem = guessability_problem(password, user_inputs)
    if problem:
        raise ma.ValidationError(problem, field_name=field_name)


class SignupSchema(ma.Schema):
    email = NormalizedEmail(required=True)
    username = Username(required=True)
    password = PasswordField()
    full_name = FullName(load_default=None)

    @validates_schema(skip_on_field_errors=True)
    def password_not_guessable(self, data, **kwargs):
        if "password" in data:
            refuse_guessable(
                data["password"],
                "password",
                [data.get("email"), data.get("username"), data.get("full_name")],
            )


class LoginSchema(ma.Schema):
    email = LoginEmail(required=True)
    password = Text(required=True, load_only=True, validate=validate.Length(max=LOGIN_PASSWORD_MAX))


class RefreshRequestSchema(ma.Schema):
    refresh_token = Text(
        validate=validate.Length(min=1, max=4096),
        metadata={
            "description": "API clients: the refresh token. Browsers omit it and "
            "send the refresh cookie plus the X-CSRF-TOKEN header."
        },
    )


class ChangePasswordSchema(ma.Schema):
    current_password = Text(
        required=True, load_only=True, validate=validate.Length(max=LOGIN_PASSWORD_MAX)
    )
    new_password = PasswordField()

    @validates_schema(skip_on_field_errors=True)
    def password_not_guessable(self, data, **kwargs):
        refuse_guessable(
            data["new_password"],
            "new_password",
            [current_user.email, current_user.username, current_user.full_name],
        )


def LinkToken(**kwargs):
    """The token of an emailed link (verification or password reset)."""
    return Text(
        required=True,
        validate=validate.Length(min=1, max=1024),
        metadata={"description": "The token from the emailed link."},
        **kwargs,
    )


class EmailTokenSchema(ma.Schema):
    token = LinkToken()


class EmailTokenQuerySchema(ma.Schema):
    class Meta:
        # Mail click-tracking may append its own parameters to the link.
        unknown = ma.EXCLUDE

    token = LinkToken()


class ForgotPasswordSchema(ma.Schema):
    email = NormalizedEmail(required=True)


class ResetPasswordSchema(ma.Schema):
    token = LinkToken()
    # Checked against the account's email, username and name once the token is verified.
    new_password = PasswordField()


class EmailVerificationSchema(ma.Schema):
    status = fields.String(metadata={"description": "verified or already_verified"})
    message = fields.String()


class TokenPairSchema(ma.Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(
        metadata={"description": "Absent when the refresh token travels in the cookie only."}
    )
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(
        required=True, metadata={"description": "Access token lifetime, seconds"}
    )
    csrf_token = fields.String(
        metadata={
            "description": "With the refresh cookie: the value to send in X-CSRF-TOKEN "
            "(a page on another site cannot read the CSRF cookie)"
        }
    )


class CsrfSchema(ma.Schema):
    csrf_token = fields.String(
        required=True,
        metadata={"description": "The value to send in X-CSRF-TOKEN with the refresh cookie"},
    )


class UserSchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    username = fields.String(dump_only=True)
    full_name = fields.String(dump_only=True, allow_none=True)
    is_active = fields.Boolean(dump_only=True)
    is_superuser = fields.Boolean(dump_only=True)
    has_password = fields.Boolean(dump_only=True)
    mfa_enabled = fields.Boolean(
        dump_only=True, metadata={"description": "Two-step verification is on"}
    )
    # The column holds the time (users.email_verified); the API says both.
    email_verified = fields.Function(
        lambda user: user.email_verified is not None,
        dump_only=True,
        metadata={"type": "boolean", "description": "The email address is verified"},
    )
    email_verified_at = fields.DateTime(
        attribute="email_verified",
        dump_only=True,
        allow_none=True,
        metadata={"description": "When the email was verified, or null"},
    )
    avatar_url = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Picture from Google/GitHub, or null"},
    )
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class UserUpdateSchema(ma.Schema):
    username = Username()
    full_name = FullName()


class DeleteAccountSchema(ma.Schema):
    password = Text(
        load_only=True,
        validate=validate.Length(max=LOGIN_PASSWORD_MAX),
        metadata={"description": "Required when the account has a password."},
    )


class ReauthenticationSchema(ma.Schema):
    password = Text(
        load_only=True,
        validate=validate.Length(max=LOGIN_PASSWORD_MAX),
        metadata={
            "description": "The account's password, when it has one: holding an access "
            "token is not enough to add a way to sign in (a provider, an authenticator app)."
        },
    )


class SessionSchema(ma.Schema):
    id = fields.String(metadata={"description": "Session (token family) id"})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime()
    expires_at = fields.DateTime()
    user_agent = fields.String(allow_none=True)
    ip_address = fields.String(allow_none=True)
    current = fields.Boolean(metadata={"description": "The session of the calling access token"})


class UsersQuerySchema(ma.Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    q = Text(
        validate=validate.Length(max=100), metadata={"description": "Search email, username, name"}
    )


class UserPageSchema(ma.Schema):
    items = fields.List(fields.Nested(UserSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
    pages = fields.Integer()


class ProviderSchema(ma.Schema):
    name = fields.String(metadata={"example": "google"})
    login_url = fields.String(metadata={"example": "/auth/google/login"})


class ProvidersSchema(ma.Schema):
    providers = fields.List(
        fields.Nested(ProviderSchema),
        metadata={"description": "The providers enabled on this server"},
    )


class OAuthLoginQuerySchema(ma.Schema):
    next = Text(
        validate=validate.Length(min=1, max=2048),
        metadata={
            "description": "Where to send the browser after login; must be on OAUTH_REDIRECT_ALLOWLIST "
            "(or under FRONTEND_URL)."
        },
    )


class AuthorizationURLSchema(ma.Schema):
    authorization_url = fields.String(
        required=True,
        metadata={
            "description": "The provider's sign-in page: open it in the browser (a top-level "
            "navigation, so the session cookie holding the state comes back)"
        },
    )


class OAuthCallbackQuerySchema(ma.Schema):
    """What the provider appends to the callback URL (read by authlib; documented here)."""

    class Meta:
        # Providers add their own parameters (Google: scope, authuser, prompt, iss).
        unknown = ma.EXCLUDE

    # Together (with their names and the path) these fit gunicorn's 4094-byte request
    # line; a longer query gets gunicorn's HTML 414 and never reaches the app.
    code = Text(validate=validate.Length(max=2048))
    state = Text(validate=validate.Length(max=512))
    error = Text(validate=validate.Length(max=256))
    error_description = Text(validate=validate.Length(max=1024))


class IdentitySchema(ma.Schema):
    provider = fields.String(metadata={"example": "google"})
    email = fields.String(
        allow_none=True,
        metadata={"description": "Verified email the provider gave at the last login"},
    )
    created_at = fields.DateTime(metadata={"description": "When the identity was linked"})
    last_login_at = fields.DateTime()


class MessageSchema(ma.Schema):
    message = fields.String()


class HealthSchema(ma.Schema):
    status = fields.String(metadata={"example": "ok"})


class LivenessSchema(HealthSchema):
    version = fields.String(
        metadata={"example": "0.1.0", "description": "auth_service's version (CHANGELOG.md)"}
    )


class TokenInfoSchema(ma.Schema):
    access_token = fields.Dict()
    refresh_token = fields.Dict()
    rotation = fields.Dict()
