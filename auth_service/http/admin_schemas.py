"""Schemas of a superuser's changes to other accounts (/users/{id}, POST /users/)."""

import marshmallow as ma
from marshmallow import fields, validates_schema

from auth_service.http.schemas import FullName, PasswordField, SignupSchema, Username


class JSONBoolean(fields.Boolean):
    """``true`` or ``false`` only: marshmallow's Boolean also takes "yes", 1 and "on", and
    a flag that grants superuser should mean what the client wrote."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class AdminUserUpdateSchema(ma.Schema):
    username = Username()
    full_name = FullName()
    is_superuser = JSONBoolean(
        metadata={"description": "Refused (409 last_superuser) for the last active superuser"},
    )
    email_verified = JSONBoolean(
        metadata={"description": "Mark the address verified (now) or unverified"}
    )


class AdminUserCreateSchema(SignupSchema):
    # Required unless send_invite is true (password_or_invite).
    password = PasswordField(required=False)
    is_superuser = JSONBoolean(load_default=False)
    email_verified = JSONBoolean(load_default=False)
    send_invite = JSONBoolean(
        load_default=False,
        metadata={
            "description": "Email the user a link to choose a password (the reset link, "
            "PASSWORD_RESET_TOKEN_MAX_AGE)"
        },
    )

    @validates_schema
    def password_or_invite(self, data, **kwargs):
        if "password" not in data and not data.get("send_invite"):
            raise ma.ValidationError("Required unless send_invite is true.", field_name="password")
