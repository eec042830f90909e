"""Marshmallow schemas of two-step verification (auth_service.http.mfa)."""

import marshmallow as ma
from marshmallow import fields, validate, validates_schema

from auth_service.http.passkey_schemas import AssertionSchema
from auth_service.http.schemas import Text, TokenPairSchema

TOTP_CODE = validate.Regexp(r"^[0-9]{6}$", error="Must be the 6 digits the app shows.")
# Sixteen base32 characters, typed with or without dashes and spaces.
RECOVERY_CODE_LENGTH = validate.Length(min=16, max=32)
MFA_TOKEN_LENGTH = validate.Length(min=1, max=128)


class OneCodeSchema(ma.Schema):
    """Exactly one of ``code`` (authenticator app) and ``recovery_code``."""

    code = Text(load_only=True, validate=TOTP_CODE, metadata={"example": "123456"})
    recovery_code = Text(
        load_only=True, validate=RECOVERY_CODE_LENGTH, metadata={"example": "abcd-efgh-ijkl-mnop"}
    )

    @validates_schema
    def exactly_one(self, data, **kwargs):
        if ("code" in data) == ("recovery_code" in data):
            raise ma.ValidationError("Give either code or recovery_code.", field_name="code")


class MfaLoginSchema(OneCodeSchema):
    """Exactly one of ``code``, ``recovery_code`` and ``passkey``."""

    passkey = fields.Nested(
        AssertionSchema,
        load_only=True,
        metadata={"description": "A passkey assertion (navigator.credentials.get())"},
    )
    mfa_token = Text(
        load_only=True,
        validate=MFA_TOKEN_LENGTH,
        metadata={
            "description": "From the login's answer. Browsers may omit it and send the "
            "mfa_token cookie plus the X-CSRF-TOKEN header."
        },
    )

    @validates_schema
    def exactly_one(self, data, **kwargs):
        if sum(key in data for key in ("code", "recovery_code", "passkey")) != 1:
            raise ma.ValidationError(
                "Give one of code, recovery_code or passkey.", field_name="code"
            )


class TotpVerifySchema(ma.Schema):
    factor_id = Text(required=True, validate=validate.Length(min=1, max=36))
    code = Text(required=True, load_only=True, validate=TOTP_CODE)


class MfaRequiredSchema(ma.Schema):
    mfa_required = fields.Boolean(required=True, metadata={"example": True})
    mfa_token = fields.String(
        required=True, metadata={"description": "Single use; POST it to /auth/login/mfa"}
    )
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds"})
    methods = fields.List(fields.String(), required=True, metadata={"example": ["totp"]})
    csrf_token = fields.String(
        metadata={"description": "With the mfa_token cookie: the X-CSRF-TOKEN value"}
    )


class PendingMfaSchema(ma.Schema):
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds"})
    methods = fields.List(fields.String(), required=True)
    csrf_token = fields.String(required=True)


class TotpEnrolmentSchema(ma.Schema):
    factor_id = fields.String(required=True)
    secret = fields.String(required=True, metadata={"description": "Base32, for typing in"})
    otpauth_uri = fields.String(required=True)
    qr_svg = fields.String(required=True, metadata={"description": "The URI as an SVG QR code"})


class RecoveryCodesSchema(ma.Schema):
    recovery_codes = fields.List(
        fields.String(), required=True, metadata={"description": "Shown once; each works once"}
    )


class MfaEnabledSchema(TokenPairSchema, RecoveryCodesSchema):
    """A fresh aal2 pair for the session that verified, and the recovery codes."""


class FactorSchema(ma.Schema):
    id = fields.String()
    type = fields.String(metadata={"example": "totp"})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    verified = fields.Boolean()


class FactorListSchema(ma.Schema):
    factors = fields.List(fields.Nested(FactorSchema))
    recovery_codes_left = fields.Integer()
