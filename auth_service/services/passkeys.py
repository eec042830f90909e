"""Passkeys (WebAuthn credentials): their challenges, their rows, and signing in with one.

A ceremony starts with options carrying a challenge: 64 random bytes, of which the
database keeps the SHA-256 (a ``webauthn_challenges`` row, so every instance sees it),
for CHALLENGE_LIFETIME, bound to the ceremony and, for a registration, to the account.
The answer names its challenge in clientDataJSON; one conditional DELETE on the
autocommit engine spends it whatever the answer then is, so a challenge serves one
verification, and of two requests presenting one assertion only one gets that far.

An accepted assertion moves the credential's sign count with a conditional UPDATE: of
two assertions of one credential racing (two challenges), only one counts. A passkey
proves possession of a key held by an authenticator and the user's verification by it
(RFC 8176 ``hwk`` and ``user``): it signs in at aal2 on its own, and is a second factor
after a password or a provider (auth_service.services.mfa).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.persistence import queries
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import Passkey, User, WebAuthnChallenge, utcnow
from auth_service.security import passkey_ceremonies as ceremonies
from auth_service.security.password_attempts import check_passkey
from auth_service.services import accounts, audit, sessions

REGISTRATION = "registration"
AUTHENTICATION = "authentication"
# The second step's name in the login's "methods".
PASSKEY = "passkey"
# RFC 8176: proof of possession of a key held by an authenticator, and the user's
# presence and verification at it.
METHODS = ["hwk", "user"]
DEFAULT_NAME = "Passkey"


def require_enabled() -> None:
    """404 ``passkeys_disabled`` without a relying party configured."""
    if not ceremonies.enabled():
        raise APIError(Error.PASSKEYS_DISABLED)


# --- challenges -------------------------------------------------------------------------


def issue_challenge(ceremony: str, user_id: int | None = None, name: str | None = None) -> bytes:
    """A new challenge for ``ceremony`` (committed with the request)."""
    challenge = ceremonies.new_challenge()
    now = utcnow()
    db.session.add(
        WebAuthnChallenge(
            id=ceremonies.challenge_digest(challenge),
            ceremony=ceremony,
            user_id=user_id,
            name=name,
            created_at=now,
            expires_at=now + ceremonies.CHALLENGE_LIFETIME,
        )
    )
    return challenge


@dataclass(frozen=True)
class Spent:
    """A challenge just spent, and the name a registration asked for."""

    challenge: bytes
    name: str | None


def spend_challenge(credential: dict, ceremony: str, user_id: int | None = None) -> Spent | None:
    """Spend the live challenge ``credential`` answers, if it was issued for ``ceremony``
    (and, for a registration, to ``user_id``): a statement of its own, committed whatever
    the request then answers. None when there is no such challenge (used, expired, of
    another ceremony or account)."""
    challenge = ceremonies.presented_challenge(credential)
    if challenge is None:
        return None
    table = WebAuthnChallenge.__table__
    conditions = [
        table.c.id == ceremonies.challenge_digest(challenge),
        table.c.ceremony == ceremony,
        table.c.expires_at > utcnow(),
    ]
    if user_id is not None:
        conditions.append(table.c.user_id == user_id)
    with autocommit_engine().connect() as connection:
        spent = connection.execute(
            sa.delete(table).where(*conditions).returning(table.c.name)
        ).first()
    return None if spent is None else Spent(challenge, spent.name)


def purge(before) -> int:
    """Delete challenges that expired before ``before`` (not committed); how many."""
    return db.session.execute(
        sa.delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at < before)
    ).rowcount


# --- rows -------------------------------------------------------------------------------


def has_any(user_id: int) -> bool:
    """Whether the account has a passkey."""
    return bool(db.session.scalar(sa.select(sa.exists().where(Passkey.user_id == user_id))))


def of_user(user_id: int) -> list[Passkey]:
    """The account's passkeys, oldest first."""
    return list(
        db.session.scalars(
            sa.select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at)
        )
    )


def descriptors(user_id: int) -> list[tuple[str, str | None]]:
    """(credential id, transports) of the account's passkeys, for allow/excludeCredentials."""
    return [(p.credential_id, p.transports) for p in of_user(user_id)]


def own_passkey(user_id: int, passkey_id: str) -> Passkey:
    """The user's passkey ``passkey_id``; anyone else's, or none, is a 404."""
    passkey = queries.owned(Passkey, passkey_id, user_id)
    if passkey is None:
        raise APIError(Error.PASSKEY_NOT_FOUND)
    return passkey


def summary(passkey: Passkey) -> dict:
    """What GET /users/me/passkeys shows of a passkey."""
    return {
        "id": passkey.id,
        "name": passkey.name,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
        "backed_up": passkey.backed_up,
    }


# --- assertions -------------------------------------------------------------------------


def login_options(email: str | None) -> dict:
    """Request options for a sign-in (or a second step, or a step-up). With an email of
    an account that has passkeys, they are listed; any other email gets the answer of an
    email without passkeys (an empty list: the authenticator offers what it holds)."""
    require_enabled()
    allow = []
    if email:
        user = accounts.find_by_email(email)
        if user is not None and user.is_active:
            allow = descriptors(user.id)
    challenge = issue_challenge(AUTHENTICATION)
    return ceremonies.authentication_options(challenge, allow)


def login(credential: dict) -> tuple[User, sessions.TokenPair]:
    """The account of a passkey assertion and a new aal2 session; a 401 for any refusal,
    an unknown credential's as any other's (and each spends the failure budgets)."""
    require_enabled()
    spent = spend_challenge(credential, AUTHENTICATION)
    presented = ceremonies.presented_credential(credential)
    if presented is None:
        raise _login_refused(None, "malformed")
    credential_id, _ = presented
    passkey = _by_credential_id(credential_id)
    user = db.session.get(User, passkey.user_id) if passkey is not None else None
    if spent is None:
        raise _login_refused(user, "no_challenge")

    def verify() -> bool:
        return user is not None and _accept(credential, spent.challenge, passkey)

    valid = check_passkey(user, credential_id, verify)
    if not valid or not user.is_active:
        reason = "unknown_passkey" if user is None else "passkey" if not valid else "inactive"
        raise _login_refused(user, reason)
    methods = [*METHODS, sessions.MULTIPLE_FACTORS]
    return user, sessions.start_session(user, methods, aal="aal2")


def _login_refused(user: User | None, reason: str) -> APIError:
    """login_failed for a refused passkey sign-in (committed alone: the answer is a 401),
    and that 401, the same whatever the reason."""
    details = {"method": PASSKEY, "reason": reason}
    audit.record_failure(audit.LOGIN_FAILED, user and user.id, details=details)
    return APIError(Error.INVALID_PASSKEY)


def prove(user: User, credential: dict) -> bool:
    """Whether ``credential`` is a valid assertion by one of ``user``'s passkeys, for a
    live challenge (spent now). The caller counts the attempt (password_attempts)."""
    spent = spend_challenge(credential, AUTHENTICATION)
    presented = ceremonies.presented_credential(credential)
    if spent is None or presented is None:
        return False
    passkey = _by_credential_id(presented[0])
    if passkey is None or passkey.user_id != user.id:
        return False
    return _accept(credential, spent.challenge, passkey)


def _by_credential_id(credential_id: str) -> Passkey | None:
    if "\x00" in credential_id or len(credential_id) > 1400:
        return None
    return db.session.scalar(sa.select(Passkey).where(Passkey.credential_id == credential_id))


def _accept(credential: dict, challenge: bytes, passkey: Passkey) -> bool:
    """Verify the assertion against the stored key and count, then record the new count
    with a conditional UPDATE (a racing assertion of the same credential may have moved
    it first)."""
    presented = ceremonies.presented_credential(credential)
    if presented is None:
        return False
    handle = presented[1]
    if handle is not None and handle.hex() != passkey.user_handle:
        return False
    asserted = ceremonies.verify_assertion(
        credential, challenge, passkey.public_key, passkey.sign_count
    )
    if asserted is None:
        claimed = ceremonies.presented_sign_count(credential)
        if passkey.sign_count and claimed is not None and claimed <= passkey.sign_count:
            # What a cloned authenticator looks like (WebAuthn §6.1.1): refused, and flagged.
            current_app.logger.warning(
                "passkey %s of user %s: sign count %s not above %s (cloned authenticator?)",
                passkey.id,
                passkey.user_id,
                claimed,
                passkey.sign_count,
            )
        return False
    new = asserted.new_sign_count
    counted = db.session.execute(
        sa.update(Passkey)
        .where(
            Passkey.id == passkey.id,
            # 0 and 0: an authenticator that keeps no counter.
            Passkey.sign_count < new if new else Passkey.sign_count == 0,
        )
        .values(sign_count=new, last_used_at=utcnow(), backed_up=asserted.backed_up)
        .execution_options(synchronize_session=False)
    ).rowcount
    return counted == 1
