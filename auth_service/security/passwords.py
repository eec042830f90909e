"""Password hashing with argon2id, configured from the app settings."""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import Flask, current_app
from nacl import bindings as sodium
from nacl.exceptions import InvalidkeyError
from zxcvbn import zxcvbn

from auth_service.observability import metrics

# zxcvbn's own input limit; what follows cannot make a guessable start strong.
ZXCVBN_MAX_LENGTH = 72


# What libsodium writes: argon2id v1.3 with a 16-byte salt, a 32-byte hash and one lane.
SODIUM_SALT_LENGTH = sodium.crypto_pwhash_SALTBYTES
SODIUM_HASH_LENGTH = 32
# Longest encoded hash libsodium's verify accepts (its buffer holds 128 bytes with the NUL).
SODIUM_MAX_ENCODED = sodium.crypto_pwhash_STRBYTES - 1


class PasswordHasher(argon2.PasswordHasher):
    """argon2-cffi's PasswordHasher, with argon2id v1.3 computed by libsodium.

    libsodium (PyNaCl) picks its AVX2/AVX-512 code at run time; argon2-cffi's wheels
    carry the reference implementation's SSE2 code at most. Same algorithm, same
    parameters, same PHC string in both directions, so an attacker's cost per guess is
    unchanged while the defender's hash gets cheaper (docs/adr/1202). What libsodium
    cannot compute -- argon2i/argon2d, version 0x10, more lanes to write, other salt or
    hash lengths -- stays with argon2-cffi, so every stored hash still verifies and
    check_needs_rehash (argon2-cffi's) still upgrades it.
    """

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        """Hash ``password``: libsodium when it writes exactly these parameters."""
        if (
            salt is not None
            or self.type is not Type.ID
            or self.parallelism != 1
            or self.salt_len != SODIUM_SALT_LENGTH
            or self.hash_len != SODIUM_HASH_LENGTH
        ):
            return super().hash(password, salt=salt)
        return sodium.crypto_pwhash_str_alg(
            _encoded(password, self.encoding),
            self.time_cost,
            self.memory_cost * 1024,
            sodium.crypto_pwhash_ALG_ARGON2ID13,
        ).decode("ascii")

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        """Verify like argon2-cffi (same exceptions); argon2id v1.3 through libsodium."""
        text = _decoded(hash)
        parameters = argon2.extract_parameters(text)  # InvalidHashError when malformed
        if (
            parameters.type is not Type.ID
            or parameters.version != argon2.low_level.ARGON2_VERSION
            or len(text) > SODIUM_MAX_ENCODED
        ):
            return super().verify(hash, password)
        try:  # libsodium compares in constant time
            return sodium.crypto_pwhash_str_verify(
                text.encode("ascii"), _encoded(password, self.encoding)
            )
        except InvalidkeyError:
            raise VerifyMismatchError("The password does not match the supplied hash") from None


def _decoded(hash: str | bytes) -> str:
    return hash.decode("ascii", "replace") if isinstance(hash, bytes) else hash


def _encoded(password: str | bytes, encoding: str) -> bytes:
    return password if isinstance(password, bytes) else password.encode(encoding)


def available_cores() -> int:
    """Cores this process may run on (a container's cpuset, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def hashing_slots(concurrency: int) -> threading.BoundedSemaphore:
    """The slots of ARGON2_CONCURRENCY hashes at once (0: one per core of the process)."""
    return threading.BoundedSemaphore(concurrency or available_cores())


def init_app(app: Flask) -> None:
    """Build the hasher once, its hashing slots, and a dummy hash to verify against for
    unknown users."""
    hasher = PasswordHasher(
        time_cost=app.config["ARGON2_TIME_COST"],
        memory_cost=app.config["ARGON2_MEMORY_COST"],
        parallelism=app.config["ARGON2_PARALLELISM"],
        type=Type.ID,
    )
    app.extensions["password_hasher"] = hasher
    # More hashes at once than cores only slow each other down (docs/adr/1202); threads
    # beyond the slots wait their turn, holding no CPU.
    app.extensions["password_hash_slots"] = hashing_slots(app.config["ARGON2_CONCURRENCY"])
    # Verifying against this when there is no real hash makes "no such account"
    # take as long as "wrong password".
    app.extensions["dummy_password_hash"] = hasher.hash("dummy password, never matches")


def _hasher() -> PasswordHasher:
    return current_app.extensions["password_hasher"]


@contextmanager
def _hashing_slot(operation: str) -> Iterator[PasswordHasher]:
    """The hasher, while this thread holds one of the process's ARGON2_CONCURRENCY slots
    (the work timed for the metrics, the wait for a slot not)."""
    with current_app.extensions["password_hash_slots"], metrics.password_hashing(operation):
        yield _hasher()


def hash_password(password: str) -> str:
    """Hash a password with the configured argon2id parameters."""
    with _hashing_slot("hash") as hasher:
        return hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password in constant time, at the cost of one verification with the
    configured parameters: a missing hash (unknown account) is checked against the dummy
    hash, a cheaper one (made before the parameters were raised) is topped up."""
    hashed = password_hash or current_app.extensions["dummy_password_hash"]
    with _hashing_slot("verify") as hasher:
        try:
            return hasher.verify(hashed, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False
        finally:
            _top_up(hasher, hashed, password)


# libsodium's smallest argon2id memory, in KiB.
MIN_MEMORY_COST = sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN // 1024
# With no memory to make up (only the time cost was raised), the top-up hashes in this
# fraction of the configured memory, with as many more passes: each page mapped costs
# more than a pass over it, so a full-size top-up would overshoot.
TIME_ONLY_MEMORY_FRACTION = 4


def _top_up(hasher: PasswordHasher, verified: str | bytes, password: str) -> None:
    """Hash once more, so that verifying ``verified`` costs about what a verification with
    the hasher's parameters costs.

    Otherwise, after the parameters are raised, a login for an account whose hash
    predates the change answers sooner than one for an unknown email (checked against
    the dummy hash, made with the current parameters). The extra hash computes the
    missing blocks (time_cost x memory_cost KiB) in the missing memory, so that both
    the blocks computed and the memory mapped add up to a current verification's.
    Lowered parameters cannot be made up for this way
    (docs/adr/0102-login-time-after-a-parameter-change.md).
    """
    try:
        old = argon2.extract_parameters(_decoded(verified))
        blocks = argon2_blocks(hasher) - argon2_blocks(old)
        memory = hasher.memory_cost - old.memory_cost
    except InvalidHashError:  # a corrupt stored hash: nothing was computed
        blocks, memory = argon2_blocks(hasher), hasher.memory_cost
    if blocks <= 0:
        return
    if memory < MIN_MEMORY_COST:
        memory = hasher.memory_cost // TIME_ONLY_MEMORY_FRACTION
    time_cost = max(1, round(blocks / max(MIN_MEMORY_COST, memory)))
    PasswordHasher(
        time_cost=time_cost,
        memory_cost=max(MIN_MEMORY_COST, round(blocks / time_cost)),
        parallelism=1,
        type=Type.ID,
    ).hash(password)


def argon2_blocks(parameters: argon2.Parameters | argon2.PasswordHasher) -> int:
    """The work of one argon2 hash or verification: blocks computed, time x memory (KiB)."""
    return parameters.time_cost * parameters.memory_cost


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
