"""Adding and removing passkeys: the changes to who can sign in.

A passkey is a verified factor from the moment it is registered: the first one turns
two-step verification on as a verified authenticator app does (every other session
ends, the token version moves on), and the registering session, which has just proven
it, is raised to aal2 with a fresh pair. Removing the last factor turns it off; removing
the last way to sign in at all (no password, no provider, no other passkey) is refused.
Every change holds the account row first (auth_service.services.mfa.hold_account).
"""

from __future__ import annotations

import sqlalchemy as sa

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.persistence.models import OAuthAccount, Passkey, Session, User, new_uuid
from auth_service.security import passkey_ceremonies as ceremonies
from auth_service.services import account_emails, audit, mfa, passkeys, sessions


def registration_options(
    user: User, session: Session, name: str | None, password: str | None
) -> dict:
    """Creation options for a new passkey of ``user`` (committed with the request: the
    challenge, bound to the account and to ``name``)."""
    passkeys.require_enabled()
    mfa.require_recent_proof(user, session, password)
    challenge = passkeys.issue_challenge(passkeys.REGISTRATION, user.id, name)
    return ceremonies.registration_options(
        challenge,
        ceremonies.user_handle(user.id),
        user.email,
        user.full_name or user.username,
        exclude=passkeys.descriptors(user.id),
    )


def register(user: User, session: Session, credential: dict) -> tuple[Passkey, sessions.TokenPair]:
    """Verify and store a new passkey (``credential`` from navigator.credentials.create());
    the passkey and a fresh aal2 pair for ``session``."""
    passkeys.require_enabled()
    spent = passkeys.spend_challenge(credential, passkeys.REGISTRATION, user.id)
    registered = spent and ceremonies.verify_registration(credential, spent.challenge)
    if not registered:
        raise APIError(Error.PASSKEY_REGISTRATION_FAILED)
    mfa.hold_account(user.id)
    turned_on = not mfa.has_verified_factor(user.id)
    taken = db.session.scalar(
        sa.select(sa.exists().where(Passkey.credential_id == registered.credential_id))
    )
    if taken:
        raise APIError(Error.PASSKEY_ALREADY_REGISTERED)
    passkey = Passkey(
        id=new_uuid(),
        user_id=user.id,
        credential_id=registered.credential_id,
        public_key=registered.public_key,
        user_handle=ceremonies.user_handle(user.id).hex(),
        sign_count=registered.sign_count,
        transports=" ".join(registered.transports) or None,
        backed_up=registered.backed_up,
        name=spent.name or passkeys.DEFAULT_NAME,
    )
    db.session.add(passkey)
    pair = mfa.factor_added(user, session, passkeys.METHODS)
    audit.record(audit.PASSKEY_ADDED, user.id, details=_described(passkey))
    if turned_on:
        audit.record(audit.MFA_ENABLED, user.id, details={"factor": passkeys.PASSKEY})
    account_emails.send_passkey_added(user, passkey.name, turned_on)
    return passkey, pair


def remove(user: User, passkey_id: str) -> None:
    """Remove one of the user's passkeys (404 for anyone else's); 409 when it is the last
    way to sign in; with the last factor goes two-step verification."""
    mfa.hold_account(user.id)
    passkey = passkeys.own_passkey(user.id, passkey_id)
    others = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Passkey)
        .where(Passkey.user_id == user.id, Passkey.id != passkey.id)
    )
    if not others and not user.has_password and not _has_identity(user.id):
        raise APIError(Error.LAST_PASSKEY)
    db.session.delete(passkey)
    db.session.flush()
    audit.record(audit.PASSKEY_REMOVED, user.id, details=_described(passkey))
    if not mfa.has_verified_factor(user.id):
        mfa.turn_off(user, by_admin=False)


def _described(passkey: Passkey) -> dict:
    # Which passkey, as GET /users/me/passkeys names it: never its key or credential id.
    return {"passkey_id": passkey.id, "name": passkey.name}


def _has_identity(user_id: int) -> bool:
    return bool(db.session.scalar(sa.select(sa.exists().where(OAuthAccount.user_id == user_id))))
