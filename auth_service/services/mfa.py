"""Two-step verification: authenticator apps (TOTP), recovery codes, and the aal2 rule.

Two-step verification is on while an account has a verified factor. Then every sign-in
asks for a code after the first factor (auth_service.services.mfa_login), and the
changes that could lock the owner out or let someone in need an access token of an aal2
session (``require_aal2``), which a code proven in that session gives (``step_up``).

Every change to an account's factors or recovery codes first holds the account row, so
two of them (two enrolments, the last two factors removed at once) apply one after the
other. Each code is spent by a conditional write: of two requests presenting one code,
one passes.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.persistence import queries
from auth_service.persistence.models import (
    MfaChallenge,
    MfaFactor,
    Passkey,
    RecoveryCode,
    Session,
    User,
    new_uuid,
    utcnow,
)
from auth_service.security import sealing, second_factors
from auth_service.security.password_attempts import check_second_factor
from auth_service.services import account_emails, accounts, audit, passkeys, sessions

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
# RFC 8176: what a TOTP or recovery code proves (both are one-time codes).
OTP = "otp"


# --- the rule ---------------------------------------------------------------------------


def enrolled(user: User) -> bool:
    """Whether two-step verification is on (read with the account: no query)."""
    return user.mfa_enabled


def has_verified_factor(user_id: int) -> bool:
    """Whether the account has a verified authenticator app or a passkey."""
    return _has_verified_app(user_id) or passkeys.has_any(user_id)


def _has_verified_app(user_id: int) -> bool:
    return bool(
        db.session.scalar(
            sa.select(
                sa.exists().where(MfaFactor.user_id == user_id, MfaFactor.verified_at.is_not(None))
            )
        )
    )


def methods(user_id: int) -> list[str]:
    """The second steps a sign-in of this account may take."""
    if not passkeys.has_any(user_id):
        return [TOTP, RECOVERY_CODE]
    if _has_verified_app(user_id):
        return [TOTP, passkeys.PASSKEY, RECOVERY_CODE]
    return (
        [passkeys.PASSKEY, RECOVERY_CODE] if _recovery_codes_left(user_id) else [passkeys.PASSKEY]
    )


def require_aal2(user: User, claims: dict) -> None:
    """403 ``mfa_required`` when the account has two-step verification on and the access
    token's session has not proven a second factor."""
    if claims.get("aal") != "aal2" and enrolled(user):
        raise APIError(Error.MFA_REQUIRED)


def hold_account(user_id: int) -> None:
    """Lock the account row until the commit (a write: SQLite's write lock too), so that
    changes to its factors apply one at a time. A non-key update: the foreign-key checks
    of a refresh racing it do not wait for it."""
    db.session.execute(
        sa.update(User)
        .where(User.id == user_id)
        .values(updated_at=User.updated_at)
        .execution_options(synchronize_session=False)
    )


# --- codes ------------------------------------------------------------------------------


def prove(
    user: User,
    code: str | None = None,
    recovery_code: str | None = None,
    passkey: dict | None = None,
) -> list[str] | None:
    """Spend one of the account's second factors: a TOTP code of a verified factor, a
    recovery code, or a passkey assertion. The RFC 8176 methods it proves, or None when it
    is wrong, replayed or spent (a failed attempt of the account's login budgets)."""

    def spend() -> bool:
        if passkey is not None:
            return passkeys.prove(user, passkey)
        if code is not None:
            return any(_spend_totp(factor, code) for factor in _verified_factors(user.id))
        return _spend_recovery_code(user.id, recovery_code or "")

    if not check_second_factor(user, spend):
        return None
    if recovery_code is not None:
        audit.record(audit.RECOVERY_CODE_USED, user.id)
        account_emails.send_recovery_code_used(user, _recovery_codes_left(user.id))
    return passkeys.METHODS if passkey is not None else [OTP]


def record_failed_proof(
    user: User, step: str, code: str | None = None, passkey: dict | None = None
) -> None:
    """mfa_challenge_failed for a second factor ``prove`` refused at ``step`` (``login``,
    ``step_up``), naming the kind it was given the way ``prove`` picks it; committed
    alone: the request answers with an error."""
    factor = (
        passkeys.PASSKEY if passkey is not None else TOTP if code is not None else RECOVERY_CODE
    )
    details = {"step": step, "factor": factor}
    audit.record_failure(audit.MFA_CHALLENGE_FAILED, user.id, details=details)


def _spend_totp(factor: MfaFactor, code: str) -> bool:
    """Accept ``code`` for ``factor`` once: its time step must be later than the last one
    accepted, and recording it is conditional on that still being so."""
    now = utcnow()
    try:
        secret = sealing.unseal(factor.secret, _sealing_context(factor))
    except sealing.Unsealable:
        # Sealed under another key, or copied from another row: it proves nothing, and
        # the login must not fail with a 500 (the recovery codes still work).
        current_app.logger.warning("MFA factor %s: its secret does not open", factor.id)
        return False
    step = second_factors.matching_step(secret, code, now, factor.last_used_step)
    if step is None:
        return False
    spent = db.session.execute(
        sa.update(MfaFactor)
        .where(
            MfaFactor.id == factor.id,
            sa.or_(MfaFactor.last_used_step.is_(None), MfaFactor.last_used_step < step),
        )
        .values(last_used_step=step, last_used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return spent == 1


def _spend_recovery_code(user_id: int, code: str) -> bool:
    spent = db.session.execute(
        sa.update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == second_factors.recovery_code_digest(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    return spent == 1


def _verified_factors(user_id: int) -> list[MfaFactor]:
    return db.session.scalars(
        sa.select(MfaFactor)
        .where(MfaFactor.user_id == user_id, MfaFactor.verified_at.is_not(None))
        .order_by(MfaFactor.created_at)
    ).all()


def _recovery_codes_left(user_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )


def _sealing_context(factor: MfaFactor) -> str:
    # The secret opens only in its own row of its own account.
    return f"mfa_factors:{factor.id}:{factor.user_id}"


def _replace_recovery_codes(user_id: int) -> list[str]:
    """A new set of codes; the old ones stop working (not committed)."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = second_factors.new_recovery_codes()
    db.session.add_all(
        RecoveryCode(user_id=user_id, code_hash=second_factors.recovery_code_digest(code))
        for code in codes
    )
    return codes


# --- enrolment --------------------------------------------------------------------------


def require_recent_proof(user: User, session: Session, password: str | None) -> None:
    """Adding a factor decides who can sign in: a stolen access token must not add the
    thief's. So the session must have proven a factor within REAUTHENTICATION_MAX_AGE,
    or the caller confirms with the password (400, or 401 for a password-less account)."""
    proven_at = session.authenticated_at or session.created_at
    if proven_at < utcnow() - current_app.config["REAUTHENTICATION_MAX_AGE"]:
        accounts.reauthenticate(user, proven_at, password)


def start_totp(user: User, session: Session, password: str | None) -> dict:
    """A new, unverified authenticator-app factor (replacing one still unverified), with
    what the app needs to scan or type.

    The session must have proven a factor lately, or the caller confirms with the
    password (``require_recent_proof``).
    """
    require_recent_proof(user, session, password)
    hold_account(user.id)
    db.session.execute(
        sa.delete(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.verified_at.is_(None))
    )
    secret = second_factors.new_totp_secret()
    factor = MfaFactor(id=new_uuid(), user_id=user.id, type=TOTP)
    factor.secret = sealing.seal(secret, _sealing_context(factor))
    db.session.add(factor)
    uri = second_factors.provisioning_uri(secret, user.email, current_app.config["MFA_ISSUER"])
    return {
        "factor_id": factor.id,
        "secret": secret,
        "otpauth_uri": uri,
        "qr_svg": second_factors.qr_svg(uri),
    }


def verify_totp(
    user: User, session: Session, factor_id: str, code: str
) -> tuple[sessions.TokenPair, list[str]]:
    """Verify an enrolment with its first code: two-step verification is on (or has one
    more factor). Every other session ends, this one is raised to aal2 with a fresh
    pair, and a new set of recovery codes replaces any earlier one."""
    hold_account(user.id)
    factor = _own_factor(user.id, factor_id)
    if factor.verified_at is not None:
        raise APIError(Error.FACTOR_ALREADY_VERIFIED)
    if not check_second_factor(user, lambda: _spend_totp(factor, code)):
        raise APIError(Error.WRONG_MFA_CODE)
    turned_on = not has_verified_factor(user.id)
    factor.verified_at = utcnow()
    codes = _replace_recovery_codes(user.id)
    pair = factor_added(user, session, [OTP])
    if turned_on:
        audit.record(audit.MFA_ENABLED, user.id, details={"factor": TOTP})
        account_emails.send_mfa_enabled(user)
    return pair, codes


def factor_added(user: User, session: Session, methods: list[str]) -> sessions.TokenPair:
    """A factor was just added and proven in ``session`` (the account held): two-step
    verification is on, every other session ends, and this one is raised to aal2 with a
    fresh pair."""
    user.mfa_enabled = True
    # A new token version: a login that read the account before this commit, and so
    # skipped the second step, gets tokens that are dead on arrival.
    user.token_version = User.token_version + 1
    sessions.revoke_other_sessions(user.id, session.id, sessions.REASON_MFA_ENABLED)
    db.session.flush()
    return sessions.elevate(user, session, methods)


def _own_factor(user_id: int, factor_id: str) -> MfaFactor:
    """The user's factor ``factor_id``; anyone else's, or none, is a 404."""
    factor = queries.owned(MfaFactor, factor_id, user_id)
    if factor is None:
        raise APIError(Error.FACTOR_NOT_FOUND)
    return factor


# --- managing ---------------------------------------------------------------------------


def list_factors(user: User) -> dict:
    """The account's factors and how many recovery codes are unused."""
    factors = db.session.scalars(
        sa.select(MfaFactor).where(MfaFactor.user_id == user.id).order_by(MfaFactor.created_at)
    ).all()
    return {
        "factors": [
            {
                "id": factor.id,
                "type": factor.type,
                "created_at": factor.created_at,
                "last_used_at": factor.last_used_at,
                "verified": factor.verified_at is not None,
            }
            for factor in factors
        ],
        "recovery_codes_left": _recovery_codes_left(user.id),
    }


def remove_factor(user: User, factor_id: str) -> None:
    """Remove one of the user's factors; with the last verified one go the recovery codes
    (two-step verification is off, and the user is told)."""
    hold_account(user.id)
    factor = _own_factor(user.id, factor_id)
    was_verified = factor.verified_at is not None
    db.session.delete(factor)
    db.session.flush()
    if was_verified and not has_verified_factor(user.id):
        turn_off(user, by_admin=False)


def new_recovery_codes(user: User) -> list[str]:
    """Replace the account's recovery codes; 409 when two-step verification is off."""
    hold_account(user.id)
    if not has_verified_factor(user.id):
        raise APIError(Error.MFA_NOT_ENABLED)
    return _replace_recovery_codes(user.id)


def reset(user: User) -> bool:
    """Remove every factor, recovery code and pending login step of a locked-out user (a
    superuser's or the CLI's doing); whether two-step verification was on."""
    hold_account(user.id)
    was_on = has_verified_factor(user.id)
    db.session.execute(sa.delete(MfaFactor).where(MfaFactor.user_id == user.id))
    # A passkey is a verified factor too: with one left, the account would still ask for it.
    db.session.execute(sa.delete(Passkey).where(Passkey.user_id == user.id))
    if was_on:
        turn_off(user, by_admin=True)
    return was_on


def turn_off(user: User, by_admin: bool) -> None:
    """Two-step verification is off: its codes and pending login steps go."""
    user.mfa_enabled = False
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(sa.delete(MfaChallenge).where(MfaChallenge.user_id == user.id))
    audit.record(audit.MFA_DISABLED, user.id, details={"by_admin": by_admin})
    account_emails.send_mfa_disabled(user, by_admin=by_admin)


# --- step-up ----------------------------------------------------------------------------


def step_up(
    user: User,
    session: Session,
    code: str | None = None,
    recovery_code: str | None = None,
    passkey: dict | None = None,
) -> sessions.TokenPair:
    """Raise the caller's session to aal2 with a code or a passkey; a fresh pair for it."""
    if not enrolled(user):
        raise APIError(Error.MFA_NOT_ENABLED)
    proven = prove(user, code=code, recovery_code=recovery_code, passkey=passkey)
    if proven is None:
        record_failed_proof(user, "step_up", code, passkey)
        raise APIError(Error.WRONG_PASSKEY if passkey is not None else Error.WRONG_MFA_CODE)
    return sessions.elevate(user, session, proven)
