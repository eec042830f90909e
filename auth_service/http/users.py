"""/users: self-service profile and superuser administration."""

from __future__ import annotations

import sqlalchemy as sa
from flask_jwt_extended import current_user, get_current_user
from flask_smorest import Blueprint

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.http.admin_schemas import AdminUserCreateSchema, AdminUserUpdateSchema
from auth_service.http.audit_schemas import EventPageQuerySchema, SecurityEventPageSchema
from auth_service.http.common import aal2_required, access_required, json_required
from auth_service.http.schemas import (
    DeleteAccountSchema,
    ErrorSchema,
    IdentitySchema,
    MessageSchema,
    SessionSchema,
    UserPageSchema,
    UserSchema,
    UsersQuerySchema,
    UserUpdateSchema,
)
from auth_service.persistence.models import User
from auth_service.services import accounts, administration, audit, identities, mfa, sessions

blp = Blueprint("users", __name__, url_prefix="/users", description="Profiles and administration")


@blp.route("/me", methods=["GET"])
@blp.response(200, UserSchema)
@access_required(blp)
def get_me():
    """The calling user's profile."""
    # The User itself, not the current_user proxy: the schema reads every field, and
    # through the proxy each read re-resolves the user from the request context.
    return get_current_user()


@blp.route("/me", methods=["PATCH"])
@access_required(blp)
@json_required
@blp.arguments(UserUpdateSchema())
@blp.response(200, UserSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Username already taken")
def update_me(changes):
    """Change ``full_name`` and/or ``username``; any other field is rejected."""
    return accounts.update_profile(current_user, changes)


@blp.route("/me", methods=["DELETE"])
@access_required(blp)
@aal2_required(blp)
@blp.arguments(DeleteAccountSchema(), required=False)
@blp.response(204)
@blp.alt_response(400, schema=ErrorSchema, description="Password missing or incorrect")
@blp.alt_response(
    429, schema=ErrorSchema, description="Too many wrong passwords (shared with login)"
)
def delete_me(data):
    """Delete the account and every session; confirm with the password if it has one."""
    accounts.delete_account(current_user, data.get("password"))


@blp.route("/me/security-events", methods=["GET"])
@access_required(blp)
@blp.arguments(EventPageQuerySchema(), location="query")
@blp.response(200, SecurityEventPageSchema)
def security_events(query):
    """The caller's own security events, newest first (sign-ins, failures, changes)."""
    return audit.page(
        user_id=current_user.id,
        types=audit.USER_VISIBLE,
        cursor=int(query["cursor"]) if "cursor" in query else None,
        limit=query["limit"],
    )


@blp.route("/me/identities", methods=["GET"])
@blp.response(200, IdentitySchema(many=True))
@access_required(blp)
def list_identities():
    """The Google/GitHub identities linked to the calling user."""
    return identities.list_identities(current_user)


@blp.route("/me/identities/<any(google, github):provider>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No identity of this provider is linked")
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="It is the last way to sign in (no password, no other identity)",
)
@access_required(blp)
@aal2_required(blp)
def unlink_identity(provider):
    """Unlink a provider; refused when the account would have no way left to sign in."""
    identities.unlink(current_user, provider)


# /users answers too: Flask's redirect to /users/ is an HTML 308 a JSON client would
# have to follow.
@blp.route("/", methods=["GET"], strict_slashes=False)
@access_required(blp, superuser=True)
@blp.arguments(UsersQuerySchema(), location="query")
@blp.response(200, UserPageSchema)
def list_users(query):
    """Paginated list of users, optionally filtered by ``q`` (superuser)."""
    select = sa.select(User).order_by(User.id)
    if query.get("q"):
        escaped = query["q"].lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        select = select.where(
            sa.or_(
                User.email.like(pattern, escape="\\"),
                sa.func.lower(User.username).like(pattern, escape="\\"),
                sa.func.lower(User.full_name).like(pattern, escape="\\"),
            )
        )
    page = db.paginate(select, page=query["page"], per_page=query["per_page"], error_out=False)
    return {
        "items": page.items,
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
        "pages": page.pages,
    }


@blp.route("/", methods=["POST"], strict_slashes=False)
@access_required(blp, superuser=True)
@json_required
@blp.arguments(AdminUserCreateSchema())
@blp.response(201, UserSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Email or username already taken")
def create_user(data):
    """Create an account (superuser); with ``send_invite`` the user is emailed a link to
    choose a password, and no password is needed."""
    return administration.create_user(data)


# users.id is a 32-bit INTEGER; SQLite's driver raises OverflowError past 64 bits.
MAX_USER_ID = 2**31 - 1


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id) if user_id <= MAX_USER_ID else None
    if user is None:
        raise APIError(Error.USER_NOT_FOUND)
    return user


def _set_active(user_id: int, active: bool) -> User:
    user = _user_or_404(user_id)
    if not active and user.id == current_user.id:
        raise APIError(Error.CANNOT_DEACTIVATE_SELF)
    return accounts.set_active(user, active)


@blp.route("/<int:user_id>/activate", methods=["PUT"])
@blp.response(200, UserSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@access_required(blp, superuser=True)
def activate(user_id):
    """Activate an account (superuser)."""
    return _set_active(user_id, True)


@blp.route("/<int:user_id>/deactivate", methods=["PUT"])
@blp.response(200, UserSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@blp.alt_response(409, schema=ErrorSchema, description="A superuser cannot deactivate themselves")
@access_required(blp, superuser=True)
def deactivate(user_id):
    """Deactivate an account and revoke its sessions at once (superuser)."""
    return _set_active(user_id, False)


@blp.route("/<int:user_id>/mfa", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@access_required(blp, superuser=True)
def reset_mfa(user_id):
    """Turn off two-step verification of a locked-out user: every factor and recovery code
    is removed, and the user is emailed (superuser)."""
    mfa.reset(_user_or_404(user_id))


@blp.route("/<int:user_id>", methods=["GET"])
@blp.response(200, UserSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@access_required(blp, superuser=True)
def get_user(user_id):
    """Any account's profile (superuser)."""
    return _user_or_404(user_id)


@blp.route("/<int:user_id>", methods=["PATCH"])
@access_required(blp, superuser=True)
@json_required
@blp.arguments(AdminUserUpdateSchema())
@blp.response(200, UserSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="Username already taken, or the last active superuser would be demoted",
)
def update_user(changes, user_id):
    """Change ``full_name``, ``username``, ``is_superuser`` and/or ``email_verified`` of
    any account (superuser)."""
    return administration.update_user(_user_or_404(user_id), changes)


@blp.route("/<int:user_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="The last active superuser, or the caller's own account (DELETE /users/me)",
)
@access_required(blp, superuser=True)
def delete_user(user_id):
    """Delete an account and every session of it (superuser)."""
    user = _user_or_404(user_id)
    if user.id == current_user.id:
        raise APIError(Error.CANNOT_DELETE_SELF)
    accounts.remove_account(user)


@blp.route("/<int:user_id>/sessions", methods=["GET"])
@blp.response(200, SessionSchema(many=True))
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@access_required(blp, superuser=True)
def user_sessions(user_id):
    """An account's live sessions, most recently used first (superuser)."""
    return sessions.list_sessions(_user_or_404(user_id))


@blp.route("/<int:user_id>/sessions", methods=["DELETE"])
@blp.response(200, MessageSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such user")
@access_required(blp, superuser=True)
def revoke_user_sessions(user_id):
    """Revoke every session of an account; its access tokens die with them (superuser)."""
    count = administration.revoke_sessions(_user_or_404(user_id))
    return {"message": f"{count} session(s) revoked."}
