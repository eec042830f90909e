"""Google/GitHub identities: find-or-create the user of a provider login, list, unlink.

A login is matched by (provider, subject id) first, so a returning user is found
even after changing the address at the provider. Only a *new* identity looks at
the email, and only at one the provider verified:

- no account has that email: a new account is created (no password, the
  provider's name and avatar, the email counted as verified);
- an account has it and its own email is verified: the identity is linked to it.
  If the account has a password, that password is removed and every session of the
  account ends (token version bumped, refresh tokens revoked): a verified address
  does not prove that whoever set the password reads its mail (a scanner may have
  opened the link, the attacker may have set the password before the owner came),
  and the provider's login does (docs/adr/0401). The owner can set a password again
  through /auth/forgot-password;
- an account has it but never verified it: refused (409). Whoever signed up with
  that address never proved they read its mail (it may be an attacker who
  pre-registered the victim's address, waiting for the victim's Google login to
  walk into a shared account), so nothing is linked. The answer tells the user to
  log in with the password and verify the email first (a password reset, which
  proves the mailbox, verifies it too and ends every session of whoever set the
  old password), then link the provider from the signed-in session.

A signed-in user links a provider of their own choosing with ``link_signed_in``
(``POST /auth/{provider}/link``): the password and sessions stay, since the
session proves who asked. Every link is announced by email to the account.
"""

from __future__ import annotations

import re
import secrets

import sqlalchemy as sa

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.integrations.oauth_providers import LABELS, ProviderProfile
from auth_service.persistence.models import OAuthAccount, User, utcnow
from auth_service.services import account_emails, audit, passkeys, sessions
from auth_service.services.accounts import find_by_email

USERNAME_MIN, USERNAME_MAX = 3, 50
USERNAME_ATTEMPTS = 20


def find_identity(provider: str, subject: str) -> OAuthAccount | None:
    """The identity row of a provider's subject."""
    return db.session.get(OAuthAccount, (provider, subject))


def sign_in(profile: ProviderProfile) -> User:
    """The user this provider login signs in as, creating or linking per the module rules."""
    label = LABELS[profile.provider]
    identity = find_identity(profile.provider, profile.subject)
    if identity is not None:
        user = identity.user
        _ensure_active(user)
        identity.email = profile.email
        identity.last_login_at = utcnow()
        return user
    if profile.email is None:
        raise APIError(Error.EMAIL_NOT_VERIFIED, label=label)
    user = find_by_email(profile.email)
    if user is None:
        user = _new_user(profile)
        _add_identity(user, profile)
        db.session.flush()  # the new account's id, for the session the caller starts
        audit.record(audit.SIGNUP, user.id, details={"method": profile.provider})
        return user
    _ensure_linkable(user, profile)
    evicted = user.has_password
    if evicted:
        _evict_everyone(user)
    _add_identity(user, profile)
    audit.record(
        audit.IDENTITY_LINKED,
        user.id,
        details={"provider": profile.provider, "password_removed": evicted},
    )
    account_emails.send_identity_linked(user, label, password_removed=evicted)
    return user


def link_signed_in(
    user_id: int, token_version: int, session_id: str, profile: ProviderProfile
) -> User:
    """Link the provider identity of ``profile`` to the signed-in user who started the link.

    ``token_version`` and ``session_id`` are those of the access token that asked: a
    password change, or the end of that session (logout, logout-all, revocation) since
    then voids the request. The account's email must be verified, so that nobody who
    pre-registered someone else's address can attach a sign-in method of their own that
    would outlive a password reset by the owner.
    """
    label = LABELS[profile.provider]
    user = db.session.get(User, user_id)
    # Held until the commit: a logout-all or password change racing this link either
    # waits for it or has already made the session fail the hold.
    if (
        not sessions.hold_live_session(session_id, user_id)
        or user is None
        or not user.is_active
        or user.token_version != token_version
    ):
        db.session.rollback()
        raise APIError(Error.SESSION_ENDED, label=label)
    if user.email_verified is None:
        raise APIError(Error.EMAIL_UNVERIFIED, label=label)
    identity = find_identity(profile.provider, profile.subject)
    if identity is not None:
        if identity.user_id == user.id:
            return user
        raise APIError(Error.IDENTITY_IN_USE, label=label)
    _ensure_provider_free(user, profile)
    _add_identity(user, profile)
    audit.record(audit.IDENTITY_LINKED, user.id, details={"provider": profile.provider})
    account_emails.send_identity_linked(user, label, password_removed=False)
    return user


def _add_identity(user: User, profile: ProviderProfile) -> None:
    db.session.add(
        OAuthAccount(
            provider=profile.provider, subject=profile.subject, user=user, email=profile.email
        )
    )


def _evict_everyone(user: User) -> None:
    """Remove the password and end every session and access token of ``user`` (not committed).

    One UPDATE, whatever the row holds by then: a password changed meanwhile is
    removed as well, and the version is bumped in SQL so no concurrent bump is lost.
    """
    db.session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(
            password_hash=None, password_changed_at=utcnow(), token_version=User.token_version + 1
        )
        .execution_options(synchronize_session=False)
    )
    sessions.revoke_user_tokens(user.id, sessions.REASON_IDENTITY_LINKED)
    db.session.expire(user, ["password_hash", "password_changed_at", "token_version"])


def _ensure_active(user: User) -> None:
    if not user.is_active:
        raise APIError(Error.ACCOUNT_INACTIVE)


def _ensure_linkable(user: User, profile: ProviderProfile) -> None:
    """Link only into an account whose owner proved the same mailbox (see module docstring)."""
    label = LABELS[profile.provider]
    _ensure_active(user)
    if user.email_verified is None:
        raise APIError(Error.ACCOUNT_EXISTS_UNVERIFIED, label=label, provider=profile.provider)
    _ensure_provider_free(user, profile)


def _ensure_provider_free(user: User, profile: ProviderProfile) -> None:
    """One identity per provider per account: 409 when ``user`` has another of this provider."""
    label = LABELS[profile.provider]
    taken = db.session.scalar(
        sa.select(OAuthAccount.subject).where(
            OAuthAccount.user_id == user.id, OAuthAccount.provider == profile.provider
        )
    )
    if taken is not None:
        raise APIError(Error.PROVIDER_ALREADY_LINKED, label=label)


def _new_user(profile: ProviderProfile) -> User:
    """A password-less account from the provider's profile (added, not committed)."""
    user = User(
        email=profile.email,
        username=_unique_username(profile.username_hint or profile.name or profile.email),
        full_name=profile.name,
        avatar_url=profile.avatar_url,
        password_hash=None,
        email_verified=utcnow(),
    )
    db.session.add(user)
    return user


def _unique_username(hint: str) -> str:
    """A free username (3-50 of letters, digits, '_', '.', '-') derived from ``hint``."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "", hint.split("@")[0])[: USERNAME_MAX - 5]
    if len(base) < USERNAME_MIN:
        base = f"user{base}"
    candidates = [base] + [f"{base}{n}" for n in range(2, USERNAME_ATTEMPTS)]
    taken = set(
        db.session.scalars(
            sa.select(sa.func.lower(User.username)).where(
                sa.func.lower(User.username).in_([c.lower() for c in candidates])
            )
        )
    )
    for candidate in candidates:
        if candidate.lower() not in taken:
            return candidate
    return f"{base}-{secrets.token_hex(2)}"


def list_identities(user: User) -> list[OAuthAccount]:
    """The user's linked identities, by provider."""
    return list(
        db.session.scalars(
            sa.select(OAuthAccount)
            .where(OAuthAccount.user_id == user.id)
            .order_by(OAuthAccount.provider)
        )
    )


def unlink(user: User, provider: str) -> None:
    """Remove one identity; refused when it is the last way to sign in (no password, no
    other identity, no passkey)."""
    identities = list_identities(user)
    identity = next((i for i in identities if i.provider == provider), None)
    if identity is None:
        raise APIError(Error.IDENTITY_NOT_FOUND, label=LABELS[provider])
    if not user.has_password and len(identities) == 1 and not passkeys.has_any(user.id):
        raise APIError(Error.LAST_SIGN_IN_METHOD, label=LABELS[provider])
    db.session.delete(identity)
    audit.record(audit.IDENTITY_UNLINKED, user.id, details={"provider": provider})
