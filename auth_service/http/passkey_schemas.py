"""Marshmallow schemas of passkeys (auth_service.http.passkeys): credentials as the
browser's ``PublicKeyCredential.toJSON()`` gives them (binary fields in base64url), and
the ceremony options as py_webauthn writes them.

Field names are WebAuthn's own (camelCase): what is loaded goes to py_webauthn as is.
Fields a browser may add are ignored (unknown=EXCLUDE).
"""

import marshmallow as ma
from marshmallow import fields, validate

from auth_service.http.schemas import Text, TokenPairSchema

# base64url without padding; a credential id is at most 1023 bytes (WebAuthn L3).
B64URL = validate.Regexp(r"^[A-Za-z0-9_-]*$", error="Must be base64url.")
CREDENTIAL_ID = [validate.Length(min=1, max=1400), B64URL]
# Client data, authenticator data, signatures, attestation objects: a few KiB at most,
# within MAX_CONTENT_LENGTH anyway.
BLOB = [validate.Length(min=1, max=16_384), B64URL]
PUBLIC_KEY = validate.Equal("public-key")


class _Credential(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    id = Text(required=True, validate=CREDENTIAL_ID)
    rawId = Text(required=True, validate=CREDENTIAL_ID)
    type = Text(required=True, validate=PUBLIC_KEY, metadata={"example": "public-key"})
    authenticatorAttachment = Text(allow_none=True, validate=validate.Length(max=32))
    clientExtensionResults = fields.Dict(load_default=dict)


class AttestationResponseSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    clientDataJSON = Text(required=True, validate=BLOB)
    attestationObject = Text(required=True, validate=BLOB)
    transports = fields.List(
        Text(validate=validate.Length(max=32)), validate=validate.Length(max=8)
    )


class RegistrationCredentialSchema(_Credential):
    """What navigator.credentials.create() returned, as JSON."""

    response = fields.Nested(AttestationResponseSchema, required=True)


class AssertionResponseSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    clientDataJSON = Text(required=True, validate=BLOB)
    authenticatorData = Text(required=True, validate=BLOB)
    signature = Text(required=True, validate=BLOB)
    userHandle = Text(allow_none=True, validate=[validate.Length(max=128), B64URL])


class AssertionSchema(_Credential):
    """What navigator.credentials.get() returned, as JSON."""

    response = fields.Nested(AssertionResponseSchema, required=True)


class RegistrationOptionsRequestSchema(ma.Schema):
    name = Text(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "What the account's list calls it", "example": "Laptop"},
    )
    password = Text(
        load_only=True,
        validate=validate.Length(max=1024),
        metadata={
            "description": "Needed when the session proved a factor longer ago than "
            "REAUTHENTICATION_MAX_AGE"
        },
    )


class LoginOptionsRequestSchema(ma.Schema):
    email = Text(
        validate=validate.Length(max=320),
        metadata={"description": "Lists the account's passkeys; omit for discoverable ones"},
    )


class CreationOptionsSchema(ma.Schema):
    """PublicKeyCredentialCreationOptions, binary fields in base64url: for
    navigator.credentials.create() (PublicKeyCredential.parseCreationOptionsFromJSON)."""

    rp = fields.Dict()
    user = fields.Dict()
    challenge = fields.String()
    pubKeyCredParams = fields.List(fields.Dict())
    timeout = fields.Integer()
    excludeCredentials = fields.List(fields.Dict())
    authenticatorSelection = fields.Dict()
    attestation = fields.String()
    hints = fields.List(fields.String())


class RequestOptionsSchema(ma.Schema):
    """PublicKeyCredentialRequestOptions, binary fields in base64url: for
    navigator.credentials.get() (PublicKeyCredential.parseRequestOptionsFromJSON)."""

    challenge = fields.String()
    timeout = fields.Integer()
    rpId = fields.String()
    allowCredentials = fields.List(fields.Dict())
    userVerification = fields.String()


class PasskeySchema(ma.Schema):
    id = fields.String()
    name = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    backed_up = fields.Boolean(metadata={"description": "Synced to other devices"})


class PasskeyListSchema(ma.Schema):
    passkeys = fields.List(fields.Nested(PasskeySchema))


class PasskeyRegisteredSchema(TokenPairSchema):
    """The new passkey, and a fresh aal2 pair for the session that registered it."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
