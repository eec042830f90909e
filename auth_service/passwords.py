"""Password hashing with argon2id, configured from the app settings."""

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app
from zxcvbn import zxcvbn

# zxcvbn's own input limit; what follows cannot make a guessable start strong.
ZXCVBN_MAX_LENGTH = 72


def init_app(app: Flask) -> None:
    """Build the hasher once and a dummy hash to verify against for unknown users."""
    hasher = PasswordHasher(
        time_cost=app.config["ARGON2_TIME_COST"],
        memory_cost=app.config["ARGON2_MEMORY_COST"],
        parallelism=app.config["ARGON2_PARALLELISM"],
        type=Type.ID,
    )
    app.extensions["password_hasher"] = hasher
    # Verifying against this when there is no real hash makes "no such account"
    # take as long as "wrong password".
    app.extensions["dummy_password_hash"] = hasher.hash("dummy password, never matches")


def _hasher() -> PasswordHasher:
    return current_app.extensions["password_hasher"]


def hash_password(password: str) -> str:
    """Hash a password with the configured argon2id parameters."""
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password in constant time; a missing hash costs one full verify too."""
    try:
        return _hasher().verify(
            password_hash or current_app.extensions["dummy_password_hash"], password
        ) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than the configured ones."""
    return _hasher().check_needs_rehash(password_hash)


def guessability_problem(password: str, user_inputs: list[str | None]) -> str | None:
    """Why zxcvbn finds the password too easy to guess, or None.

    zxcvbn ships its dictionaries (common passwords, names, words), so this makes
    no network call. The account's own email, username and name count as known
    words. PASSWORD_MIN_STRENGTH is the lowest zxcvbn score (0-4) accepted.
    """
    min_score = current_app.config["PASSWORD_MIN_STRENGTH"]
    if min_score <= 0:
        return None
    inputs = [word for value in user_inputs if value for word in (value, *value.split("@"))]
    result = zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=inputs)
    if result["score"] >= min_score:
        return None
    warning = result["feedback"].get("warning")
    return "This password is too easy to guess" + (f": {warning}" if warning else ".")
