"""The keys that sign tokens: their life in the ``signing_keys`` table, and each
process's copy of them (the key ring), re-read every JWKS_REFRESH_SECONDS.

A key is ``next`` (published in the JWKS, not signing yet), ``current`` (signing),
``retired`` (published, verifying, until the longest-lived token it signed has expired)
or ``revoked`` (gone at once). Rotation is two-phase: a next key starts signing only
JWKS_CACHE_SECONDS after it was published, so no verifier meets a token whose key its
cached JWKS lacks. The changes are due by time; whichever process reads the table first
after they are due makes them, and the database decides races: a unique partial index
allows one current and one next key, and a promotion is a conditional UPDATE.

The HS256 key is JWT_SECRET_KEY itself (shared with legacy verifiers, never published).
The first start also adopts it as a retired key, so that tokens from before key ids
(header ``{"alg":"HS256","typ":"JWT"}``) keep working until they expire.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import jwt
import sqlalchemy as sa
from flask import Flask, current_app, g, request
from sqlalchemy.exc import DBAPIError, IntegrityError

from auth_service.extensions import db
from auth_service.persistence.engines import autocommit_engine
from auth_service.persistence.models import SigningKey, utcnow
from auth_service.security import key_material, sealing
from auth_service.security.key_material import HS256

log = logging.getLogger(__name__)

NEXT, CURRENT, RETIRED, REVOKED = "next", "current", "retired", "revoked"
STATES = (NEXT, CURRENT, RETIRED, REVOKED)
EXTENSION = "signing_keys"
# Requests that neither sign nor verify a token: the probes (liveness must not need the
# database), the API's documentation and the demo's pages.
KEYLESS_BLUEPRINTS = frozenset({"health", "api-docs", "docs_assets", "demo"})


class KeyLifeError(ValueError):
    """An operator's request the key life refuses (the CLI prints it in one line)."""


class _Raced(Exception):
    """Another process made the same change first: roll back and read again."""


@dataclass(frozen=True)
class Key:
    """One published (or HS256) key as this process holds it."""

    kid: str
    algorithm: str
    state: str
    expires_at: datetime | None
    verifying: object  # a cryptography public key, or the HS256 secret
    signing: object | None = None  # the private key or secret: the current key only
    jwk: dict | None = None  # the public JWK (None for HS256)

    def verifies_at(self, now: datetime) -> bool:
        """A retired key verifies until its last token has expired."""
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class KeyRing:
    """The keys of one read of the table, and the JWKS serialised once for them."""

    keys: dict[str, Key]
    current: Key
    jwks: bytes
    etag: str
    loaded_at: datetime

    def verifying_key(self, kid, now: datetime | None = None) -> Key | None:
        """The key ``kid`` when it may verify now: published or HS256, not expired."""
        key = self.keys.get(kid) if isinstance(kid, str) else None
        return key if key is not None and key.verifies_at(now or utcnow()) else None


@dataclass
class _Holder:
    ring: KeyRing | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def init_app(app: Flask) -> None:
    """A key ring per app, refreshed before a request that finds it stale."""
    app.extensions[EXTENSION] = _Holder()
    app.before_request(_refresh_before_request)


def _refresh_before_request() -> None:
    if request.blueprint in KEYLESS_BLUEPRINTS:
        return
    # Before the request writes anything: on SQLite a key change made later, on its own
    # connection, would wait for the request's write lock. A database that is down leaves
    # the ring it had (the request meets the outage where it needs the database).
    try:
        keyring()
    except DBAPIError:
        log.warning("signing keys not refreshed: the database is unavailable")


def keyring() -> KeyRing:
    """This app's keys, read again once JWKS_REFRESH_SECONDS have passed."""
    holder = current_app.extensions[EXTENSION]
    now = utcnow()
    refresh = timedelta(seconds=current_app.config["JWKS_REFRESH_SECONDS"])
    ring = holder.ring
    if ring is None or not ring.loaded_at <= now < ring.loaded_at + refresh:
        with holder.lock:
            ring = holder.ring
            if ring is None or not ring.loaded_at <= now < ring.loaded_at + refresh:
                ring = holder.ring = load(now)
    return ring


def forget(app: Flask) -> None:
    """Drop the app's key ring: the next use reads the table (tests, the CLI)."""
    app.extensions[EXTENSION].ring = None


def signing_key() -> Key:
    """The key this request signs with: the current one, the same for every token of
    the request (a promotion between two reads must not split a pair)."""
    if "signing_key" not in g:
        g.signing_key = keyring().current
    return g.signing_key


# --- reading the table -----------------------------------------------------------------


def rows() -> list[SigningKey]:
    """Every row, oldest first (detached)."""
    table = SigningKey.__table__
    with autocommit_engine().connect() as connection:
        found = connection.execute(sa.select(table).order_by(table.c.created_at)).all()
    return [SigningKey(**row._asdict()) for row in found]


def load(now: datetime) -> KeyRing:
    """Read the table, making the changes that are due first (they may race: a lost
    race is read back)."""
    for _ in range(4):
        found = rows()
        change = due_change(found, now)
        if change is None:
            return _ring(found, now)
        try:
            with db.engine.begin() as connection:
                change(connection)
        except (IntegrityError, _Raced):
            log.info("signing keys: another process changed them first")
    raise RuntimeError("signing keys: the table keeps changing under this process")


def _ring(found: list[SigningKey], now: datetime) -> KeyRing:
    keys, published = {}, []
    order = {CURRENT: 0, NEXT: 1, RETIRED: 2}
    for row in sorted(found, key=lambda r: (order.get(r.state, 3), r.created_at)):
        if row.state == REVOKED or (row.expires_at is not None and row.expires_at <= now):
            continue
        key = _key(row, current_app.config["JWT_SECRET_KEY"])
        if key is None:
            continue
        keys[row.kid] = key
        if key.jwk is not None:
            published.append(key.jwk)
    current = next(key for key in keys.values() if key.state == CURRENT)
    body = json.dumps({"keys": published}, separators=(",", ":")).encode()
    etag = '"' + key_material.b64url(hashlib.sha256(body).digest()[:16]) + '"'
    return KeyRing(keys, current, body, etag, now)


def _key(row: SigningKey, secret: str) -> Key | None:
    """The row as a Key; None for an HS256 key of another JWT_SECRET_KEY (its secret is
    gone: its tokens are refused)."""
    if row.algorithm == HS256:
        if row.kid != key_material.hs256_kid(secret):
            return None
        return Key(row.kid, HS256, row.state, row.expires_at, secret, secret)
    jwk = json.loads(row.public_jwk)
    signing = None
    if row.state == CURRENT:
        try:
            pem = sealing.unseal(row.private_key, _sealing_context(row.kid))
        except sealing.Unsealable:
            raise KeyLifeError(
                f"the current signing key {row.kid} does not open with KEY_ENCRYPTION_KEY: "
                "restore the setting, or revoke the key (flask keys revoke)"
            ) from None
        signing = key_material.from_pem(pem)
    return Key(row.kid, row.algorithm, row.state, row.expires_at, jwt.PyJWK(jwk).key, signing, jwk)


def _sealing_context(kid: str) -> str:
    """What a sealed private key is bound to: its row."""
    return f"signing_keys:{kid}"


# --- the life of keys ------------------------------------------------------------------


def token_lifetime() -> timedelta:
    """How long after a key stops signing its last token may still be valid."""
    config = current_app.config
    return max(config["JWT_ACCESS_TOKEN_EXPIRES"], config["JWT_REFRESH_TOKEN_EXPIRES"]) + (
        timedelta(seconds=config["JWT_DECODE_LEEWAY"])
    )


def publication_delay() -> timedelta:
    """How long a new key is published before it signs."""
    # max-age, plus the time an instance may serve a JWKS read before the key existed.
    config = current_app.config
    return timedelta(seconds=config["JWKS_CACHE_SECONDS"] + config["JWKS_REFRESH_SECONDS"])


def due_change(found: list[SigningKey], now: datetime):
    """The change the table needs now (a function of a connection), or None."""
    current = next((row for row in found if row.state == CURRENT), None)
    upcoming = next((row for row in found if row.state == NEXT), None)
    wanted = current_app.config["JWT_ALGORITHM"]
    if upcoming is not None and (current is None or upcoming.activates_at <= now):
        return lambda connection: _promote(connection, upcoming.kid, now)
    if current is None:
        # The first key (or the one after a revoked current key with nothing next)
        # signs at once: no verifier holds a JWKS that could lack it.
        first = [new_key(wanted, CURRENT, now, now)]
        if not found and wanted != HS256:
            first.append(_adopted_legacy_key(now))
        return lambda connection: _insert(connection, first)
    if upcoming is None and not _is_wanted(current):
        # JWT_ALGORITHM (or the HS256 secret) changed: a rotation to a key of the new one.
        # An HS256 key is never published, so waiting would serve no verifier.
        delay = timedelta(0) if wanted == HS256 else publication_delay()
        return lambda connection: _insert(connection, [new_key(wanted, NEXT, now, now + delay)])
    return None


def _is_wanted(current: SigningKey) -> bool:
    config = current_app.config
    if current.algorithm != config["JWT_ALGORITHM"]:
        return False
    return current.algorithm != HS256 or current.kid == key_material.hs256_kid(
        config["JWT_SECRET_KEY"]
    )


def new_key(algorithm: str, state: str, now: datetime, activates_at: datetime, private=None):
    """A signing_keys row for a new key (``private``: an imported private key)."""
    if algorithm == HS256:
        kid = key_material.hs256_kid(current_app.config["JWT_SECRET_KEY"])
        return SigningKey(
            kid=kid, algorithm=HS256, state=state, created_at=now, activates_at=activates_at
        )
    private = private or key_material.generate(algorithm)
    jwk = key_material.public_jwk(private, algorithm)
    return SigningKey(
        kid=jwk["kid"],
        algorithm=algorithm,
        state=state,
        public_jwk=json.dumps(jwk, separators=(",", ":")),
        private_key=sealing.seal(key_material.to_pem(private), _sealing_context(jwk["kid"])),
        created_at=now,
        activates_at=activates_at,
    )


def _adopted_legacy_key(now: datetime) -> SigningKey:
    """JWT_SECRET_KEY as a retired HS256 key: tokens signed before this table existed
    verify until the longest-lived of them has expired."""
    key = new_key(HS256, RETIRED, now, now)
    key.retired_at, key.expires_at = now, now + token_lifetime()
    return key


def _insert(connection: sa.Connection, keys: list[SigningKey]) -> None:
    columns = [c.key for c in sa.inspect(SigningKey).column_attrs]
    connection.execute(
        sa.insert(SigningKey), [{name: getattr(key, name) for name in columns} for key in keys]
    )


def _promote(connection: sa.Connection, kid: str, now: datetime) -> None:
    """Retire the current key and let next key ``kid`` sign; _Raced when another
    process did it first (the retirement then matched nothing it may keep)."""
    connection.execute(
        sa.update(SigningKey)
        .where(SigningKey.state == CURRENT)
        .values(state=RETIRED, retired_at=now, expires_at=now + token_lifetime())
    )
    promoted = connection.execute(
        sa.update(SigningKey)
        .where(SigningKey.kid == kid, SigningKey.state == NEXT)
        .values(state=CURRENT, activates_at=now)
    ).rowcount
    if promoted != 1:
        raise _Raced


def rotate(connection: sa.Connection, now: datetime, private=None) -> SigningKey:
    """Publish a new next key of JWT_ALGORITHM (``private``: an imported key) that signs
    after JWKS_CACHE_SECONDS."""
    algorithm = current_app.config["JWT_ALGORITHM"]
    if private is not None:
        algorithm = key_material.algorithm_of(private)
    elif algorithm == HS256:
        raise KeyLifeError(
            "an HS256 key is JWT_SECRET_KEY: set JWT_ALGORITHM=ES256 to rotate to a key pair"
        )
    key = new_key(algorithm, NEXT, now, now + publication_delay(), private)
    try:
        _insert(connection, [key])
    except IntegrityError:
        raise KeyLifeError(
            "a rotation is already under way (a next key exists), or this key is known"
        ) from None
    return key


def revoke(connection: sa.Connection, kid: str, now: datetime) -> str:
    """Revoke key ``kid`` (any state but revoked); the state it had."""
    row = connection.execute(sa.select(SigningKey.state).where(SigningKey.kid == kid)).first()
    if row is None:
        raise KeyLifeError(f"no signing key {kid!r}")
    if row.state == REVOKED:
        raise KeyLifeError(f"signing key {kid} is already revoked")
    connection.execute(
        sa.update(SigningKey)
        .where(SigningKey.kid == kid, SigningKey.state != REVOKED)
        .values(state=REVOKED, revoked_at=now)
    )
    return row.state
