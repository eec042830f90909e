"""Email verification, password reset, and the notices of security changes: password
changed, identity linked, two-step verification turned on or off, a recovery code used,
a passkey added.

The flows behind /auth/verify-email, /auth/forgot-password and
/auth/reset-password. Each email is rendered from ``templates/email/`` (text and
HTML, user data escaped in the HTML) in the request, and handed to ``mail.send``
once the request's changes are committed; a rolled-back request sends nothing
(auth_service.persistence.transactions).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from flask import current_app, render_template
from flask_smorest import abort

from auth_service.errors import APIError, Error
from auth_service.integrations import mail
from auth_service.persistence import transactions
from auth_service.persistence.models import User, utcnow
from auth_service.security import link_tokens
from auth_service.security.addresses import normalize_email
from auth_service.security.link_tokens import RESET_PASSWORD, VERIFY_EMAIL
from auth_service.security.passwords import guessability_problem
from auth_service.services import accounts, audit

log = logging.getLogger(__name__)

VERIFIED = "verified"
ALREADY_VERIFIED = "already_verified"


def _hours(setting: str) -> int:
    return max(1, round(current_app.config[setting].total_seconds() / 3600))


def _compose(template: str, user, subject: str, **context):
    """Render ``email/<template>.txt`` and ``.html`` into a message for ``user``."""
    context = {"user": user, "subject": subject, **context}
    return mail.build_message(
        user.email,
        subject,
        render_template(f"email/{template}.txt", **context),
        render_template(f"email/{template}.html", **context),
    )


def _send(message) -> None:
    """Hand ``message`` to the mailer once the change it reports is committed."""
    transactions.after_commit(mail.send, message)


# --- verification ---------------------------------------------------------------------


def send_verification(user: User) -> None:
    """Email ``user`` a link that verifies their address (after signup, on resend)."""
    try:
        link = link_tokens.verify_email_link(link_tokens.make_token(user, VERIFY_EMAIL))
    except link_tokens.MissingPublicURL:
        log.error("verification email for user %s not sent: PUBLIC_BASE_URL is not set", user.id)
        return
    _send(
        _compose(
            "verify_email",
            user,
            "Verify your email address",
            link=link,
            hours=_hours("EMAIL_VERIFY_TOKEN_MAX_AGE"),
        )
    )


def resend_verification(user: User) -> None:
    """Send another verification email; 409 when the address is already verified."""
    if user.email_verified is not None:
        raise APIError(Error.EMAIL_ALREADY_VERIFIED)
    send_verification(user)


def mark_verified(user: User) -> bool:
    """Record that the user reads mail at their address (not committed); False if it already was."""
    if user.email_verified is not None:
        return False
    user.email_verified = utcnow()
    audit.record(audit.EMAIL_VERIFIED, user.id)
    return True


def check_verification_token(token: str) -> User:
    """The account a verification token is good for, without verifying it; or a 400."""
    return link_tokens.load_token(token, VERIFY_EMAIL)


def verify_email(token: str) -> str:
    """Verify the address a token names: ``verified``, ``already_verified``, or a 400."""
    user = check_verification_token(token)
    return VERIFIED if mark_verified(user) else ALREADY_VERIFIED


# --- password reset -------------------------------------------------------------------


def request_password_reset(email: str) -> None:
    """Email a reset link when ``email`` names an active account; silently nothing otherwise.

    Either way the same work is done (lookup, token, rendering), so the answer
    takes about as long; only handing the message to the mailer differs, and
    that happens in the background.
    """
    user = accounts.find_by_email(email)
    eligible = user is not None and user.is_active
    target = (
        user
        if eligible
        else SimpleNamespace(
            id=0, email=normalize_email(email), username="", full_name=None, password_hash=None
        )
    )
    token = link_tokens.make_token(target, RESET_PASSWORD)
    try:
        link = link_tokens.reset_password_link(token)
    except link_tokens.MissingPublicURL:
        log.error("password reset email not sent: PUBLIC_BASE_URL is not set")
        return
    message = _compose(
        "reset_password",
        target,
        "Reset your password",
        link=link,
        minutes=round(current_app.config["PASSWORD_RESET_TOKEN_MAX_AGE"].total_seconds() / 60),
    )
    if eligible:
        audit.record(audit.PASSWORD_RESET_REQUESTED, user.id)
        _send(message)


def send_invite(user: User) -> None:
    """Email a new account a link to choose its password: a reset link (the same
    token, page and lifetime), worded as an invitation."""
    try:
        link = link_tokens.reset_password_link(link_tokens.make_token(user, RESET_PASSWORD))
    except link_tokens.MissingPublicURL:
        log.error("invitation for user %s not sent: PUBLIC_BASE_URL is not set", user.id)
        return
    _send(
        _compose(
            "invite",
            user,
            "Your new account: choose a password",
            link=link,
            minutes=round(current_app.config["PASSWORD_RESET_TOKEN_MAX_AGE"].total_seconds() / 60),
        )
    )


def check_reset_token(token: str) -> User:
    """The account a reset token is good for (without spending it), or a 400."""
    return link_tokens.load_token(token, RESET_PASSWORD)


def reset_password(token: str, new_password: str) -> User:
    """Set a new password with a reset token: every session ends, the email counts as verified."""
    user = link_tokens.load_token(token, RESET_PASSWORD)
    problem = guessability_problem(new_password, [user.email, user.username, user.full_name])
    if problem:
        abort(422, errors={"json": {"new_password": [problem]}})
    # The token is bound to the hash it was read with, and so is the write: of two
    # requests racing with it, or a change landing meanwhile, only the first goes through.
    try:
        accounts.set_password(user, new_password, event=audit.PASSWORD_RESET)
    except accounts.PasswordChangedMeanwhile:
        raise APIError(Error.INVALID_LINK) from None
    if user.email_verified is None:
        user.email_verified = utcnow()
    send_password_changed(user)
    return user


def send_password_changed(user: User) -> None:
    """Tell the user their password changed (after a reset or a change), in case it wasn't them."""
    if not current_app.config["ALERT_PASSWORD_CHANGED"]:
        return
    _send(
        _compose(
            "password_changed",
            user,
            "Your password was changed",
            changed_at=user.password_changed_at or utcnow(),
        )
    )


def send_identity_linked(user: User, provider_label: str, password_removed: bool) -> None:
    """Tell the user a provider now signs in to their account (after the link is committed)."""
    if not current_app.config["ALERT_IDENTITY_CHANGES"]:
        return
    _send(
        _compose(
            "identity_linked",
            user,
            f"{provider_label} was linked to your account",
            provider=provider_label,
            password_removed=password_removed,
            linked_at=utcnow(),
        )
    )


def send_mfa_enabled(user: User) -> None:
    """Two-step verification is now on."""
    _send(_compose("mfa_enabled", user, "Two-step verification was turned on", at=utcnow()))


def send_mfa_disabled(user: User, by_admin: bool = False) -> None:
    """Two-step verification is now off (the last factor removed, or reset by a superuser)."""
    _send(
        _compose(
            "mfa_disabled",
            user,
            "Two-step verification was turned off",
            at=utcnow(),
            by_admin=by_admin,
        )
    )


def send_recovery_code_used(user: User, left: int) -> None:
    """A recovery code signed in; ``left`` unused codes remain."""
    _send(_compose("recovery_code_used", user, "A recovery code was used", at=utcnow(), left=left))


def send_identity_unlinked(user: User, provider_label: str) -> None:
    """Tell the user a provider no longer signs in to their account."""
    _send(
        _compose(
            "identity_unlinked",
            user,
            f"{provider_label} was unlinked from your account",
            provider=provider_label,
            at=utcnow(),
        )
    )


def send_new_sign_in(user: User, at, device: str, ip: str | None, sessions_url: str | None):
    """A sign-in from a device the account has not used lately: when, what, where from."""
    _send(
        _compose(
            "new_sign_in",
            user,
            "New sign-in to your account",
            at=at,
            device=device,
            ip=ip,
            sessions_url=sessions_url,
        )
    )


def send_refresh_reuse(user: User, at, started_at, device: str, ip: str | None) -> None:
    """A refresh token was presented again: its session was ended, in case it was stolen."""
    _send(
        _compose(
            "refresh_reuse",
            user,
            "One of your sessions was signed out",
            at=at,
            started_at=started_at,
            device=device,
            ip=ip,
        )
    )


def send_passkey_added(user: User, name: str, turned_on: bool) -> None:
    """A passkey was added (``turned_on``: it turned two-step verification on)."""
    _send(
        _compose(
            "passkey_added",
            user,
            "A passkey was added to your account",
            at=utcnow(),
            name=name,
            turned_on=turned_on,
        )
    )
