"""Database models: users, their sessions and refresh tokens, their Google/GitHub identities,
their second factors and passkeys, the signing keys, and the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from auth_service.extensions import db


def utcnow() -> datetime:
    """Current time as an aware UTC datetime."""
    return datetime.now(UTC)


def new_uuid() -> str:
    """A random UUID as a string (token ids, session ids)."""
    return str(uuid.uuid4())


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every database.

    SQLite has no timezone type and gives naive datetimes back; comparing those
    with aware ones raises, so values are normalised both ways.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class User(db.Model):
    """An account. ``password_hash`` is NULL for accounts without a password."""

    __tablename__ = "users"
    __table_args__ = (
        # Usernames are unique whatever their case, decided by the database so that two
        # signups racing for "Bob" and "bob" cannot both win.
        sa.Index("uq_users_username_lower", sa.func.lower(sa.column("username")), unique=True),
        # Never reuse a deleted account's id on SQLite: its unexpired access tokens
        # (same ``sub``) must not open the next account. PostgreSQL sequences never reuse.
        {"sqlite_autoincrement": True},
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # Stored in its canonical form (auth_service.security.addresses), so the unique index holds
    # one account per mailbox however the address is spelled.
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    username: so.Mapped[str] = so.mapped_column(sa.String(50), unique=True)
    full_name: so.Mapped[str | None] = so.mapped_column(sa.String(100))
    password_hash: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    is_active: so.Mapped[bool] = so.mapped_column(default=True)
    is_superuser: so.Mapped[bool] = so.mapped_column(default=False)
    # Bumped on password change: access tokens carry it, older ones are refused.
    token_version: so.Mapped[int] = so.mapped_column(default=0)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    password_changed_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # When the user proved they read mail at ``email``; NULL until then.
    email_verified: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # Picture given by Google/GitHub when the account was created through them.
    avatar_url: so.Mapped[str | None] = so.mapped_column(sa.String(500))
    # Two-step verification is on: the account has a verified factor. Kept with the
    # factors, in their transaction (auth_service.services.mfa), so that a login and the
    # aal2 rule read it with the account instead of querying the factors.
    mfa_enabled: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())

    refresh_tokens: so.WriteOnlyMapped[RefreshToken] = so.relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    sessions: so.WriteOnlyMapped[Session] = so.relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def has_password(self) -> bool:
        """Whether the account can sign in with a password."""
        return self.password_hash is not None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class Session(db.Model):
    """One login: the row that its refresh tokens (its family) hang from.

    Rotation and revocation both write this row, so they are ordered by its lock: a
    rotation refuses to issue a child once ``revoked_at`` is set, and a revocation that
    lands after a rotation still ends the child, because every token's check reads its
    session. Access tokens carry its id as ``sid`` and die with it.
    """

    __tablename__ = "sessions"

    id: so.Mapped[str] = so.mapped_column(sa.String(36), primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # Absolute: rotation never extends it.
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime)
    # The last rotation; NULL until the first refresh.
    refreshed_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    revoked_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    revoked_reason: so.Mapped[str | None] = so.mapped_column(sa.String(32))
    # Authenticator assurance level (NIST 800-63B) the session was proven at.
    aal: so.Mapped[str] = so.mapped_column(sa.String(8), default="aal1")
    # How it was proven: RFC 8176 method values, space-separated ("pwd otp mfa"); NULL
    # for sessions from before two-step verification (their method was not recorded).
    amr: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    # The last time the user proved a factor in it (the login, or a step-up): auth_time.
    authenticated_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    user_agent: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    ip_address: so.Mapped[str | None] = so.mapped_column(sa.String(45))

    user: so.Mapped[User] = so.relationship(back_populates="sessions")

    def is_live(self, now: datetime) -> bool:
        """Unrevoked and unexpired."""
        return self.revoked_at is None and self.expires_at > now

    @property
    def methods(self) -> list[str]:
        """The session's ``amr``, as a list."""
        return self.amr.split() if self.amr else []

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id}>"


class RefreshToken(db.Model):
    """One refresh token. Tokens of one login form a family (its Session).

    Only the token id (``jti``) is stored, never the encoded token: a copy of
    this table cannot be replayed as credentials.
    """

    __tablename__ = "refresh_tokens"

    jti: so.Mapped[str] = so.mapped_column(sa.String(36), primary_key=True)
    family_id: so.Mapped[str] = so.mapped_column(
        sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # The family's absolute expiry: rotation copies it, never extends it.
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime)
    # When it was exchanged for ``replaced_by``; presenting it again is reuse.
    spent_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    replaced_by: so.Mapped[str | None] = so.mapped_column(sa.String(36))
    revoked_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    revoked_reason: so.Mapped[str | None] = so.mapped_column(sa.String(32))
    # When a duplicate presentation inside the grace window was answered with the
    # family's current token: that happens at most once per spent token.
    grace_used_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    user_agent: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    ip_address: so.Mapped[str | None] = so.mapped_column(sa.String(45))

    user: so.Mapped[User] = so.relationship(back_populates="refresh_tokens")
    session: so.Mapped[Session] = so.relationship()

    def is_live(self, now: datetime) -> bool:
        """Unspent, unrevoked and unexpired: the family's current token."""
        return self.spent_at is None and self.revoked_at is None and self.expires_at > now

    def __repr__(self) -> str:
        return f"<RefreshToken {self.jti} family={self.family_id}>"


class OAuthAccount(db.Model):
    """A Google or GitHub identity that signs in as ``user``.

    Keyed by the provider's subject id, never by email: an address can change
    or pass to someone else at the provider, the subject id cannot.
    """

    __tablename__ = "oauth_accounts"
    # One identity per provider per user: unlinking names the provider alone.
    __table_args__ = (
        sa.UniqueConstraint("user_id", "provider", name="uq_oauth_accounts_user_provider"),
    )

    provider: so.Mapped[str] = so.mapped_column(sa.String(20), primary_key=True)
    subject: so.Mapped[str] = so.mapped_column(sa.String(255), primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    # The verified email the provider gave at the last login (NULL: it vouched for none).
    email: so.Mapped[str | None] = so.mapped_column(sa.String(254))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    last_login_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    user: so.Mapped[User] = so.relationship()

    def __repr__(self) -> str:
        return f"<OAuthAccount {self.provider}:{self.subject} user={self.user_id}>"


class MfaFactor(db.Model):
    """A second factor: an authenticator app (TOTP, RFC 6238), usable once verified."""

    __tablename__ = "mfa_factors"
    __table_args__ = (
        # At most one enrolment in progress per account, whatever races to start one.
        sa.Index(
            "uq_mfa_factors_one_unverified",
            "user_id",
            unique=True,
            postgresql_where=sa.text("verified_at IS NULL"),
            sqlite_where=sa.text("verified_at IS NULL"),
        ),
    )

    id: so.Mapped[str] = so.mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    type: so.Mapped[str] = so.mapped_column(sa.String(16), default="totp")
    # The shared secret, encrypted under KEY_ENCRYPTION_KEY (auth_service.security.sealing).
    secret: so.Mapped[str] = so.mapped_column(sa.String(255))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # NULL while the enrolment awaits its first code; only verified factors sign in.
    verified_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    last_used_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # The time step of the last code accepted: it and every earlier one are spent.
    last_used_step: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)

    def __repr__(self) -> str:
        return f"<MfaFactor {self.id} {self.type} user={self.user_id}>"


class RecoveryCode(db.Model):
    """A single-use recovery code, stored as its SHA-256 (80 random bits: not guessable)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (sa.UniqueConstraint("user_id", "code_hash"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: so.Mapped[str] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    used_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)


class MfaChallenge(db.Model):
    """The second step of a login: what an ``mfa_token`` stands for.

    Only the token's SHA-256 is stored. Single use (``used_at``), bound to the account at
    its token version and to the first factor (``amr``); ``attempts`` counts the codes
    tried with it.
    """

    __tablename__ = "mfa_challenges"

    id: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_version: so.Mapped[int]
    amr: so.Mapped[str] = so.mapped_column(sa.String(32))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    used_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)


class AuditEvent(db.Model):
    """One security event: who did what to which account, from where, in which request.

    Append-only and hash-chained (auth_service.persistence.audit_log): ``hash`` is the
    SHA-256 of ``prev_hash`` and the row's content. No foreign keys: an account's
    events outlive it (``account_deleted`` is one of them).
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_user_id_id", "user_id", "id"),
        # Never reuse an id on SQLite: the chain and the cursors are ordered by it.
        {"sqlite_autoincrement": True},
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    occurred_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, index=True)
    type: so.Mapped[str] = so.mapped_column(sa.String(40))
    # The account the event is about; NULL when there is none (a login naming no account).
    user_id: so.Mapped[int | None]
    # Whose credentials made the request (the account itself, or a superuser acting on it).
    actor_id: so.Mapped[int | None]
    session_id: so.Mapped[str | None] = so.mapped_column(sa.String(36))
    ip: so.Mapped[str | None] = so.mapped_column(sa.String(45))
    user_agent: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    # The request's X-Request-ID (auth_service.observability.request_log).
    request_id: so.Mapped[str | None] = so.mapped_column(sa.String(128))
    # Never a password, token, code or secret.
    details: so.Mapped[dict | None] = so.mapped_column(sa.JSON)
    prev_hash: so.Mapped[str] = so.mapped_column(sa.String(64))
    hash: so.Mapped[str] = so.mapped_column(sa.String(64))

    def __repr__(self) -> str:
        return f"<AuditEvent {self.id} {self.type} user={self.user_id}>"


class SigningKey(db.Model):
    """A key that signs tokens (auth_service.security.signing_keys): ``next`` (published,
    not yet signing), ``current`` (signing), ``retired`` (published until ``expires_at``,
    when the last token it signed has expired) or ``revoked`` (refused at once)."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one current and one next key, decided by the database: two instances
        # starting at once, or rotating at once, cannot both win.
        *(
            sa.Index(
                f"uq_signing_keys_one_{state}",
                "state",
                unique=True,
                postgresql_where=sa.text(f"state = '{state}'"),
                sqlite_where=sa.text(f"state = '{state}'"),
            )
            for state in ("current", "next")
        ),
    )

    # RFC 7638 thumbprint of the public key (HS256: derived from JWT_SECRET_KEY).
    kid: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    algorithm: so.Mapped[str] = so.mapped_column(sa.String(8))
    state: so.Mapped[str] = so.mapped_column(sa.String(8))
    # The public JWK as JSON; NULL for an HS256 key, which is never published.
    public_jwk: so.Mapped[str | None] = so.mapped_column(sa.Text)
    # PKCS#8 PEM sealed under KEY_ENCRYPTION_KEY (security/sealing.py); NULL for HS256,
    # whose secret is JWT_SECRET_KEY itself.
    private_key: so.Mapped[str | None] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # When a next key starts signing (its publication had JWKS_CACHE_SECONDS to spread).
    activates_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime)
    retired_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # When a retired key leaves the JWKS and its tokens are refused.
    expires_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    revoked_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)


class Passkey(db.Model):
    """A WebAuthn credential (a passkey) of an account: it signs in on its own, and counts
    as a verified second factor (auth_service.services.passkeys)."""

    __tablename__ = "passkeys"

    id: so.Mapped[str] = so.mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The authenticator's credential id, base64url as the browser sends it; unique, so
    # that an assertion names one row (and one account) whoever registered it.
    credential_id: so.Mapped[str] = so.mapped_column(sa.String(1400), unique=True)
    # The COSE public key from the attestation.
    public_key: so.Mapped[bytes] = so.mapped_column(sa.LargeBinary)
    # The WebAuthn user handle the credential was created for (returned by discoverable
    # credentials as userHandle).
    user_handle: so.Mapped[str] = so.mapped_column(sa.String(128))
    # The authenticator's signature counter at the last accepted assertion (0: it keeps none).
    sign_count: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    # Space-separated AuthenticatorTransport values ("internal hybrid"), for allowCredentials.
    transports: so.Mapped[str | None] = so.mapped_column(sa.String(128))
    # Synced to other devices (the BS flag), as the last assertion said.
    backed_up: so.Mapped[bool] = so.mapped_column(default=False)
    name: so.Mapped[str] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    last_used_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Passkey {self.id} user={self.user_id}>"


class WebAuthnChallenge(db.Model):
    """A challenge handed out with WebAuthn options: single use, short-lived, bound to its
    ceremony (``registration`` or ``authentication``) and, for registration, to the
    account. Kept as its SHA-256, in the database so that every instance sees it."""

    __tablename__ = "webauthn_challenges"

    id: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    ceremony: so.Mapped[str] = so.mapped_column(sa.String(16))
    user_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The name a registration asked for, given to the passkey it creates.
    name: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime)
