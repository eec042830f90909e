"""The second step of a sign-in to an account with two-step verification on.

The first factor (a password, Google or GitHub) earns an mfa token instead of a
session: 256 random bits, of which the database keeps the SHA-256 (an ``mfa_challenges``
row). It is bound to the account at its token version, so a password reset or change
meanwhile kills it, and to the first factor, which the session's ``amr`` names. It is
single use, lives MFA_TOKEN_EXPIRES, and takes MFA_TOKEN_MAX_ATTEMPTS codes.

An attempt takes its slot with one conditional statement of its own, committed whatever
the answer, so parallel wrong codes cannot exceed the limit; a right code spends the
token with a conditional write in the transaction that starts the session, so two
requests presenting one token and one code start one session, not two.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import MfaChallenge, User, utcnow
from auth_service.security.second_factors import mfa_token_digest, new_mfa_token
from auth_service.services import mfa, sessions


def begin(user: User, first_method: str) -> str:
    """An mfa token for ``user``, who has just proven ``first_method`` (an RFC 8176
    ``amr`` value); the row is committed with the request."""
    token = new_mfa_token()
    now = utcnow()
    db.session.add(
        MfaChallenge(
            id=mfa_token_digest(token),
            user_id=user.id,
            token_version=user.token_version,
            amr=first_method,
            created_at=now,
            expires_at=now + current_app.config["MFA_TOKEN_EXPIRES"],
            attempts=0,
        )
    )
    return token


def pending(token: str) -> MfaChallenge:
    """The usable challenge of ``token``, without spending an attempt; else a 401 (what
    ``finish`` would refuse before looking at a code)."""
    challenge = db.session.get(MfaChallenge, mfa_token_digest(token))
    if (
        challenge is None
        or challenge.used_at is not None
        or challenge.expires_at <= utcnow()
        or challenge.attempts >= current_app.config["MFA_TOKEN_MAX_ATTEMPTS"]
    ):
        raise APIError(Error.INVALID_MFA_TOKEN)
    _account_of(challenge)
    return challenge


def _account_of(challenge: MfaChallenge) -> User:
    """The challenge's account, still active and at the token version it was issued for
    (a password change or reset meanwhile kills the challenge); else a 401."""
    user = db.session.get(User, challenge.user_id)
    if user is None or not user.is_active or user.token_version != challenge.token_version:
        raise APIError(Error.INVALID_MFA_TOKEN)
    return user


def finish(
    token: str, code: str | None, recovery_code: str | None, passkey: dict | None = None
) -> tuple[User, sessions.TokenPair]:
    """The account and a new aal2 session, for the right code (or a passkey assertion of
    the account) with a live mfa token."""
    challenge_id = mfa_token_digest(token)
    if not _take_attempt(challenge_id):
        raise APIError(Error.INVALID_MFA_TOKEN)
    challenge = db.session.get(MfaChallenge, challenge_id)
    if challenge is None:  # deleted since (two-step verification turned off)
        raise APIError(Error.INVALID_MFA_TOKEN)
    user = _account_of(challenge)
    methods = mfa.prove(user, code=code, recovery_code=recovery_code, passkey=passkey)
    if methods is None:
        mfa.record_failed_proof(user, "login", code, passkey)
        raise APIError(Error.INVALID_MFA_CODE)
    if not _spend(challenge_id):
        raise APIError(Error.INVALID_MFA_TOKEN)  # a parallel request spent it first
    proven = [challenge.amr, *methods, sessions.MULTIPLE_FACTORS]
    return user, sessions.start_session(user, proven, aal="aal2")


def _take_attempt(challenge_id: str) -> bool:
    """Count one attempt, if the challenge is live and has one left: a statement of its
    own, so that the count stays whatever the request then answers."""
    table = MfaChallenge.__table__
    with autocommit_engine().connect() as connection:
        taken = connection.execute(
            sa.update(table)
            .where(
                table.c.id == challenge_id,
                table.c.used_at.is_(None),
                table.c.expires_at > utcnow(),
                table.c.attempts < current_app.config["MFA_TOKEN_MAX_ATTEMPTS"],
            )
            .values(attempts=table.c.attempts + 1)
        ).rowcount
    return taken == 1


def _spend(challenge_id: str) -> bool:
    spent = db.session.execute(
        sa.update(MfaChallenge)
        .where(MfaChallenge.id == challenge_id, MfaChallenge.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    return spent == 1


def purge(before) -> int:
    """Delete challenges that expired before ``before`` (not committed); how many."""
    return db.session.execute(
        sa.delete(MfaChallenge).where(MfaChallenge.expires_at < before)
    ).rowcount
