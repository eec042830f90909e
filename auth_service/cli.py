"""Operator commands: ``flask users ...`` and ``flask tokens ...``.

Each command commits its own work before it reports it (services never commit).
"""

from __future__ import annotations

import functools
from datetime import timedelta

import click
import marshmallow as ma
import sqlalchemy as sa

from auth_service.cli_failures import DatabaseCommandGroup
from auth_service.errors import APIError
from auth_service.extensions import db
from auth_service.http.schemas import SignupSchema
from auth_service.persistence.models import RefreshToken, Session, User, utcnow
from auth_service.services import (
    account_emails,
    accounts,
    administration,
    mfa,
    mfa_login,
    passkeys,
)

# A database that is down, missing or not migrated stops these in one line.
users_cli = DatabaseCommandGroup("users", help="Manage user accounts.")
tokens_cli = DatabaseCommandGroup("tokens", help="Maintain the refresh_tokens table.")


def _api_errors_as_usage(command):
    """An APIError of the account rules (a taken email, the last superuser) is one line on
    stderr and exit 1, as click reports its own errors."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except APIError as exc:
            raise click.ClickException(exc.message) from None

    return run


def _user_or_fail(email: str) -> User:
    user = accounts.find_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email!r}.")
    return user


def _validated(**fields) -> dict:
    """Apply the API's own validation (email format, username, password policy)."""
    schema = SignupSchema(partial=tuple(k for k in SignupSchema().fields if k not in fields))
    try:
        return schema.load(fields)
    except ma.ValidationError as exc:
        messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.messages.items())
        raise click.UsageError(messages) from None


@users_cli.command("create-superuser")
@click.option("--email", prompt=True, help="Email address.")
@click.option("--username", prompt=True, help="3-50 letters, digits, _ . -")
@click.password_option("--password", help="Password (prompted, with confirmation, when omitted).")
@click.option("--full-name", default=None, help="Display name.")
@_api_errors_as_usage
def create_superuser(email, username, password, full_name):
    """Create a superuser account."""
    data = _validated(email=email, username=username, password=password, full_name=full_name)
    user = accounts.create_user(
        data["email"], data["username"], data["password"], full_name=full_name, is_superuser=True
    )
    db.session.commit()
    click.echo(f"Created superuser {user.email} (id {user.id}).")


@users_cli.command("list")
def list_users():
    """List every account."""
    users = db.session.scalars(sa.select(User).order_by(User.id)).all()
    for user in users:
        flags = ",".join(
            f
            for f, on in (("superuser", user.is_superuser), ("inactive", not user.is_active))
            if on
        )
        click.echo(f"{user.id}\t{user.email}\t{user.username}\t{flags or '-'}")
    click.echo(f"{len(users)} user(s).")


@users_cli.command("activate")
@click.argument("email")
def activate(email):
    """Allow an account to sign in again."""
    accounts.set_active(_user_or_fail(email), True)
    db.session.commit()
    click.echo(f"Activated {email}.")


@users_cli.command("deactivate")
@click.argument("email")
@_api_errors_as_usage
def deactivate(email):
    """Stop an account from signing in and revoke its sessions."""
    accounts.set_active(_user_or_fail(email), False)
    db.session.commit()
    click.echo(f"Deactivated {email}; its sessions are revoked.")


@users_cli.command("set-password")
@click.argument("email")
@click.password_option("--password", help="New password (prompted when omitted).")
@_api_errors_as_usage
def set_password(email, password):
    """Set a user's password and revoke every session of the account."""
    user = _user_or_fail(email)
    _validated(
        email=user.email, username=user.username, password=password, full_name=user.full_name
    )
    accounts.set_password(user, password)
    db.session.commit()
    click.echo(f"Password changed for {email}; its sessions are revoked.")


@users_cli.command("verify-email")
@click.argument("email")
def verify_email(email):
    """Mark an account's email address as verified (no email is sent)."""
    user = _user_or_fail(email)
    if account_emails.mark_verified(user):
        db.session.commit()
        click.echo(f"Marked {user.email} as verified.")
    else:
        click.echo(
            f"{user.email} was already verified on {user.email_verified:%Y-%m-%d %H:%M} UTC."
        )


@users_cli.command("show")
@click.argument("email")
def show(email):
    """Print an account's profile and flags."""
    user = _user_or_fail(email)
    verified = f"{user.email_verified:%Y-%m-%d %H:%M} UTC" if user.email_verified else "no"
    for label, value in (
        ("id", user.id),
        ("email", user.email),
        ("username", user.username),
        ("full name", user.full_name or "-"),
        ("active", "yes" if user.is_active else "no"),
        ("superuser", "yes" if user.is_superuser else "no"),
        ("password", "yes" if user.has_password else "no"),
        ("email verified", verified),
        ("created", f"{user.created_at:%Y-%m-%d %H:%M} UTC"),
    ):
        click.echo(f"{label}:\t{value}")


@users_cli.command("delete")
@click.argument("email")
@click.confirmation_option(prompt="Delete this account and every session of it?")
@_api_errors_as_usage
def delete(email):
    """Delete an account and its sessions (refused for the last active superuser)."""
    accounts.remove_account(_user_or_fail(email))
    db.session.commit()
    click.echo(f"Deleted {email}.")


@users_cli.command("promote")
@click.argument("email")
def promote(email):
    """Make an account a superuser."""
    accounts.set_superuser(_user_or_fail(email), True)
    db.session.commit()
    click.echo(f"{email} is a superuser.")


@users_cli.command("demote")
@click.argument("email")
@_api_errors_as_usage
def demote(email):
    """Take superuser away from an account (refused for the last active superuser)."""
    accounts.set_superuser(_user_or_fail(email), False)
    db.session.commit()
    click.echo(f"{email} is no longer a superuser.")


@users_cli.command("revoke-sessions")
@click.argument("email")
def revoke_sessions(email):
    """End every session of an account; its access tokens stop working."""
    count = administration.revoke_sessions(_user_or_fail(email))
    db.session.commit()
    click.echo(f"Revoked {count} session(s) of {email}.")


@users_cli.command("reset-mfa")
@click.argument("email")
def reset_mfa(email):
    """Turn off two-step verification of a locked-out account (the user is emailed)."""
    user = _user_or_fail(email)
    if mfa.reset(user):
        db.session.commit()
        click.echo(f"Two-step verification of {user.email} is off; its factors and codes are gone.")
    else:
        click.echo(f"{user.email} had no two-step verification to turn off.")


@tokens_cli.command("purge")
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(min=0),
    help="Keep expired or revoked sessions younger than this many days.",
)
def purge(days):
    """Delete sessions, with their refresh tokens, that expired or were revoked more than
    DAYS days ago, and the mfa tokens of logins and the passkey challenges that expired as
    long ago. A live session keeps its spent tokens: they are what reuse detection
    recognises."""
    cutoff = utcnow() - timedelta(days=days)
    dead = sa.or_(Session.expires_at < cutoff, Session.revoked_at < cutoff)
    # Explicitly, not through ON DELETE CASCADE alone: SQLite enforces it only with its
    # foreign_keys pragma on.
    db.session.execute(
        sa.delete(RefreshToken).where(RefreshToken.family_id.in_(sa.select(Session.id).where(dead)))
    )
    deleted = db.session.execute(sa.delete(Session).where(dead)).rowcount
    steps = mfa_login.purge(cutoff)
    challenges = passkeys.purge(cutoff)
    db.session.commit()
    click.echo(
        f"Deleted {deleted} session(s) and their refresh tokens, and {steps} expired "
        f"login second step(s); {challenges} expired passkey challenge(s)."
    )
