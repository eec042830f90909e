"""Account operations shared by the API and the CLI."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from auth_service.errors import APIError, Error
from auth_service.extensions import db
from auth_service.observability import metrics
from auth_service.persistence import queries
from auth_service.persistence.models import RefreshToken, Session, User, utcnow
from auth_service.security.addresses import canonical_or_none, normalize_email
from auth_service.security.password_attempts import check_password
from auth_service.security.passwords import hash_password, needs_rehash
from auth_service.services import audit, sessions


class PasswordChangedMeanwhile(APIError):
    """The password (or token version) changed after this request read the account."""

    def __init__(self):
        super().__init__(Error.PASSWORD_CHANGED_CONCURRENTLY)


def find_by_email(email: str) -> User | None:
    """The user with this email, however it is spelled (auth_service.security.addresses)."""
    canonical = canonical_or_none(email)
    if canonical is None:
        return None
    return db.session.scalar(sa.select(User).where(User.email == canonical))


def _ensure_available(
    email: str | None = None, username: str | None = None, exclude_id: int | None = None
) -> None:
    """409 when the email or (case-insensitive) username is taken by another account.

    A courtesy that names the taken field: the unique indexes decide (``_flush_claim``).
    """
    if email is not None and find_by_email(email) is not None:
        raise APIError(Error.EMAIL_TAKEN)
    if username is not None:
        query = sa.select(User.id).where(sa.func.lower(User.username) == username.lower())
        if exclude_id is not None:
            query = query.where(User.id != exclude_id)
        if db.session.scalar(query) is not None:
            raise APIError(Error.USERNAME_TAKEN)


def create_user(
    email: str,
    username: str,
    password: str | None,
    full_name: str | None = None,
    is_superuser: bool = False,
) -> User:
    """Create an account (flushed, committed by the caller); 409 when email or username is taken."""
    _ensure_available(email=email, username=username)
    user = User(
        email=normalize_email(email),
        username=username,
        full_name=full_name,
        password_hash=hash_password(password) if password is not None else None,
        password_changed_at=utcnow() if password is not None else None,
        is_superuser=is_superuser,
    )
    db.session.add(user)
    _flush_claim(email=email, username=username)
    audit.record(audit.SIGNUP, user.id, details={"method": "password" if password else "none"})
    return user


def _flush_claim(
    email: str | None = None, username: str | None = None, exclude_id: int | None = None
) -> None:
    """Write a new or changed email/username now; a racing claim the unique indexes refuse
    gets the 409 the check before the write would have given."""
    try:
        db.session.flush()
    except sa.exc.IntegrityError:
        db.session.rollback()
        # The winner has committed (the index made this insert wait for it): name the field.
        _ensure_available(email=email, username=username, exclude_id=exclude_id)
        raise


def authenticate(email: str, password: str) -> User:
    """The active user with these credentials, or a 401 that says nothing more.

    Unknown email, wrong password, password-less and inactive accounts all cost
    one argon2 verification and give the same answer, and spend the same failure
    budgets. The account is read in one statement outside the session (a login has
    nothing pending to flush), and joins the session only to have its hash upgraded.
    """
    normalized = normalize_email(email)
    user = queries.user_by_email(normalized, attach=False)
    valid = check_password(user, password, email=normalized)
    if not valid or not user.is_active:
        metrics.login(
            "unknown_account" if user is None else "wrong_password" if not valid else "inactive"
        )
        _record_login_failure(user, normalized, valid)
        raise APIError(Error.INVALID_CREDENTIALS)
    if needs_rehash(user.password_hash):
        # Only over the hash just verified: a reset or change that landed meanwhile wins.
        db.session.execute(
            sa.update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash)
            .values(password_hash=hash_password(password))
            .execution_options(synchronize_session=False)
        )
    return user


def _record_login_failure(user: User | None, normalized_email: str, valid: bool) -> None:
    """login_failed, with why (for the operator: the client's answer never says)."""
    if user is None:
        details = {"reason": "unknown_account", "email_key": audit.email_key(normalized_email)}
    else:
        reason = "inactive" if valid else "no_password" if not user.has_password else "password"
        details = {"reason": reason}
    audit.record_failure(audit.LOGIN_FAILED, user and user.id, details=details)


def set_password(user: User, new_password: str, event: str = audit.PASSWORD_CHANGED) -> None:
    """Store a new password and end every session and token issued before (not committed).

    Written only over the hash and token version this request read: of two changes or
    resets racing, the later one finds them changed and gets a 409, so neither can undo
    the other's revocations, and every change bumps the version.
    """
    now = utcnow()
    changed = db.session.execute(
        sa.update(User)
        .where(
            User.id == user.id,
            User.password_hash.is_not_distinct_from(user.password_hash),
            User.token_version == user.token_version,
        )
        .values(
            password_hash=hash_password(new_password),
            password_changed_at=now,
            token_version=user.token_version + 1,
            updated_at=now,
        )
    ).rowcount
    if changed != 1:
        db.session.rollback()
        raise PasswordChangedMeanwhile()
    sessions.revoke_user_tokens(user.id, sessions.REASON_PASSWORD)
    audit.record(event, user.id)


def change_password(
    user: User, session: Session, current_password: str, new_password: str
) -> sessions.TokenPair:
    """Check the current password, set the new one, and start a fresh session in place of
    ``session``, proven as it was (a second factor included) and by the password now."""
    if not check_password(user, current_password):
        raise APIError(Error.INVALID_PASSWORD, "The current password is incorrect.")
    set_password(user, new_password)
    methods = list(dict.fromkeys([*session.methods, sessions.PASSWORD]))
    return sessions.start_session(user, methods, aal=session.aal, event=None)


def update_profile(user: User, changes: dict) -> User:
    """Change ``username`` and/or ``full_name``."""
    if "username" in changes and changes["username"] != user.username:
        _ensure_available(username=changes["username"], exclude_id=user.id)
        user.username = changes["username"]
    if "full_name" in changes:
        user.full_name = changes["full_name"]
    _flush_claim(username=changes.get("username"), exclude_id=user.id)
    return user


def reauthenticate(user: User, signed_in_at: datetime, password: str | None) -> None:
    """Prove the caller owns the account, not just one of its access tokens, before a
    change that adds a way in: the password when the account has one, otherwise a
    sign-in no older than REAUTHENTICATION_MAX_AGE."""
    if user.has_password:
        if not password:
            raise APIError(Error.PASSWORD_REQUIRED)
        if not check_password(user, password):
            raise APIError(Error.INVALID_PASSWORD)
    elif signed_in_at < utcnow() - current_app.config["REAUTHENTICATION_MAX_AGE"]:
        raise APIError(Error.REAUTHENTICATION_REQUIRED)


def delete_account(user: User, password: str | None) -> None:
    """Delete the account and its tokens; the password is required when it has one.

    409 when it is the last active superuser (decided as in ``set_active``).
    """
    if user.has_password:
        if not password:
            raise APIError(
                Error.PASSWORD_REQUIRED, "Confirm with your password to delete the account."
            )
        if not check_password(user, password):
            raise APIError(Error.INVALID_PASSWORD)
    remove_account(user)


def remove_account(user: User) -> None:
    """Delete the account and its tokens, with no confirmation (a superuser, the CLI).

    409 when it is the last active superuser (decided as in ``set_active``).
    """
    _lock_active_superusers(user)
    user_id = user.id  # expired by the delete below
    # Revoked first: that waits for a rotation in flight (sessions.py), whose child the
    # deletes below then see.
    sessions.revoke_user_tokens(user.id, sessions.REASON_ACCOUNT_DELETED)
    db.session.execute(sa.delete(RefreshToken).where(RefreshToken.user_id == user.id))
    deleted = db.session.execute(
        sa.delete(User)
        .where(User.id == user.id, _not_the_last_superuser(user))
        .execution_options(synchronize_session="fetch")
    ).rowcount
    if deleted != 1:
        db.session.rollback()
        raise _last_superuser()
    audit.record(audit.ACCOUNT_DELETED, user_id)


def set_active(user: User, active: bool) -> User:
    """Activate or deactivate; deactivation ends every session and access token for good.

    409 when it would leave no active superuser, decided by the database: the active
    superusers are locked first (PostgreSQL), and the update itself requires another
    one (SQLite runs it under its write lock), so two superusers deactivating each
    other at once cannot both succeed.
    """
    if active:
        if not user.is_active:
            user.is_active = True
            audit.record(audit.USER_ACTIVATED, user.id)
        return user
    was_active = user.is_active
    _lock_active_superusers(user)
    deactivated = db.session.execute(
        sa.update(User)
        .where(User.id == user.id, _not_the_last_superuser(user))
        # A new token version: access tokens issued before stay dead after reactivation.
        .values(is_active=False, token_version=User.token_version + 1, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    ).rowcount
    if deactivated != 1:
        db.session.rollback()
        raise _last_superuser()
    sessions.revoke_user_tokens(user.id, sessions.REASON_DEACTIVATED)
    if was_active:
        audit.record(audit.USER_DEACTIVATED, user.id)
    return user


def set_superuser(user: User, superuser: bool) -> User:
    """Grant or revoke superuser; revoking is refused (409) when it would leave no active
    superuser, decided by the database as in ``set_active``."""
    if superuser == user.is_superuser:
        return user
    if superuser:
        user.is_superuser = True
        audit.record(audit.SUPERUSER_GRANTED, user.id)
        return user
    _lock_active_superusers(user)
    demoted = db.session.execute(
        sa.update(User)
        .where(User.id == user.id, _not_the_last_superuser(user))
        .values(is_superuser=False, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    ).rowcount
    if demoted != 1:
        db.session.rollback()
        raise _last_superuser()
    audit.record(audit.SUPERUSER_REVOKED, user.id)
    return user


def _lock_active_superusers(user: User) -> None:
    """On PostgreSQL, make a change that may remove an active superuser wait for any
    other such change. FOR NO KEY UPDATE: a plain FOR UPDATE would also block the
    foreign-key checks of a refresh of this user's sessions, and deadlock with it."""
    if user.is_superuser:
        db.session.execute(
            sa.select(User.id)
            .where(User.is_superuser, User.is_active)
            .with_for_update(key_share=True)
        )


def _not_the_last_superuser(user: User):
    """The condition a change removing ``user`` from the active superusers needs."""
    other = sa.orm.aliased(User)
    return sa.or_(
        ~User.is_superuser,
        sa.exists().where(other.is_superuser, other.is_active, other.id != user.id),
    )


def _last_superuser() -> APIError:
    return APIError(Error.LAST_SUPERUSER)
