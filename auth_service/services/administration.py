"""What a superuser (or the CLI) does to someone else's account: profile, superuser and
verification flags, deletion, sessions, creation with an invitation.

Every change is audited by the service it calls; the actor is the request's superuser
(null in the CLI).
"""

from __future__ import annotations

from auth_service.persistence.models import User
from auth_service.services import account_emails, accounts, audit, sessions


def update_user(user: User, changes: dict) -> User:
    """Apply ``full_name``, ``username``, ``is_superuser`` and ``email_verified``."""
    accounts.update_profile(user, changes)
    if "is_superuser" in changes:
        accounts.set_superuser(user, changes["is_superuser"])
    if changes.get("email_verified"):
        account_emails.mark_verified(user)
    elif changes.get("email_verified") is False:
        # The next sign-in flows treat the address as unproven again; no event (the
        # account loses nothing it could sign in with).
        user.email_verified = None
    return user


def revoke_sessions(user: User) -> int:
    """End every session of ``user``; recorded as ``logout_all`` by the actor."""
    count = sessions.revoke_user_tokens(user.id, sessions.REASON_ADMIN)
    audit.record(audit.LOGOUT_ALL, user.id, details={"sessions": count})
    return count


def create_user(data: dict) -> User:
    """Create an account; with ``send_invite`` email it a link to choose its password."""
    user = accounts.create_user(
        data["email"],
        data["username"],
        data.get("password"),
        full_name=data.get("full_name"),
        is_superuser=data["is_superuser"],
    )
    if data["is_superuser"]:
        audit.record(audit.SUPERUSER_GRANTED, user.id)
    if data["email_verified"]:
        account_emails.mark_verified(user)
    if data["send_invite"]:
        account_emails.send_invite(user)
    return user
