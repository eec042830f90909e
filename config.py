"""Settings for auth_service.

Every upper-case attribute of a config class is a setting. Each one can be
overridden by an environment variable of the same name (``.env`` is read for
development, real environment variables win over it). ``load_config`` turns the
strings into the type of the default: booleans (``true``/``false``), integers, lists
(comma separated) and durations (seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import os
import secrets
import string
import sys
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv
from limits import parse_many
from limits.strategies import STRATEGIES

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

# Real environment variables override .env (override=False keeps them).
load_dotenv(BASE_DIR / ".env", override=False)

# Variables read here besides the settings; a #: comment is their description in
# docs/configuration.md, as for the settings below.
#: Port of `make run` (read from here, so `.env` sets it too), which development's
#: `PUBLIC_BASE_URL` points at; gunicorn's port on 127.0.0.1 when `GUNICORN_BIND` is unset.
PORT = os.environ.get("PORT", "8000")
#: Database of the test suite (`TestingConfig`); CI also runs the suite on PostgreSQL.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'test.db'}")

MIN_SECRET_LENGTH = 32
# Bits a production secret must be worth to a guesser (estimated_secret_bits).
MIN_SECRET_BITS = 128
SECRET_ADVICE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
ENCRYPTION_KEY_BYTES = 32
ENCRYPTION_KEY_ADVICE = (
    "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"
)


def random_encryption_key() -> str:
    """A new KEY_ENCRYPTION_KEY value."""
    return base64.b64encode(secrets.token_bytes(ENCRYPTION_KEY_BYTES)).decode()


# Values that a copied .env.example or a tutorial would leave behind.
PLACEHOLDER_SECRETS = {"change-me", "changeme", "secret", "dev", "development"}
# Random-looking values that are public: tutorial keys copied into configs (FastAPI's
# OAuth2/JWT tutorial, Flask's SECRET_KEY docs) and the hex digests of common words
# ("secret" through sha256 is 64 hex digits, and just as guessable as "secret").
PUBLISHED_SECRETS = frozenset(
    {
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
        "192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf",
        *(
            getattr(hashlib, name)(word.encode()).hexdigest()
            for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
            for word in (
                "secret",
                "secret-key",
                "secret_key",
                "secretkey",
                "your-secret-key",
                "your_secret_key",
                "mysecretkey",
                "my-secret-key",
                "supersecret",
                "super-secret-key",
                "jwt-secret",
                "jwt_secret",
                "jwt-secret-key",
                "password",
                "changeme",
                "change-me",
                "test",
                "dev",
                "development",
                "production",
                "admin",
                "flask",
                "django",
                "fastapi",
                "",
            )
        ),
    }
)
# What random generators print (secrets.token_hex/token_urlsafe, openssl rand -hex/-base64,
# digits): the characters, and the bits zxcvbn finds as chance structure in a random draw
# (dates among digits, short words among hex), per character, with room to spare.
RANDOM_ALPHABETS = (
    (frozenset(string.digits), 1.0),
    (frozenset(string.digits + "abcdef"), 0.75),
    (frozenset(string.digits + "ABCDEF"), 0.75),
    (frozenset(string.ascii_letters + string.digits + "-_"), 0.5),
    (frozenset(string.ascii_letters + string.digits + "+/"), 0.5),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    """Raised when the configuration is unsafe or malformed."""


class Config:
    """Base settings: safe for production.

    A ``#:`` comment above a setting is its description in docs/configuration.md
    (``make docs`` regenerates it); plain comments say why.
    """

    #: `production` refuses to start without strong secrets; `development` (`make run`)
    #: serves plain http and generates secrets; anything else, `testing` included, is
    #: refused: the test suite passes its config to `create_app` (ADR 0201).
    APP_ENV = "production"
    #: Flask's testing flag; leave it off.
    TESTING = False
    #: Flask's secret: signs the session cookie, the device cookie and the email links.
    #: Required in production: at least 32 characters and 128 bits to zxcvbn, so no
    #: repeats, runs or words (`python -c 'import secrets;
    #: print(secrets.token_urlsafe(48))'`; ADR 0202).
    SECRET_KEY: str | None = None
    #: The HS256 key (`JWT_ALGORITHM=HS256`, and tokens issued before key ids existed)
    #: and the key of the refresh cookie's CSRF values. Required in production, same rule
    #: as `SECRET_KEY`, and different from it; changing it refuses every token it signed.
    JWT_SECRET_KEY: str | None = None
    #: Encrypts secrets stored in the database (TOTP secrets, private signing keys)
    #: with AES-256-GCM: 32
    #: random bytes in base64 (`python -c 'import base64, os;
    #: print(base64.b64encode(os.urandom(32)).decode())'`). Required in production;
    #: changing it turns off every authenticator app enrolled under the old one and
    #: leaves the stored private signing keys unusable (docs/operations.md).
    KEY_ENCRYPTION_KEY: str | None = None
    #: SQLAlchemy URL (the default file is in the checkout's `instance/`);
    #: `postgres://` and `postgresql://` use psycopg2.
    DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'auth_service.db'}"
    #: Application log level.
    LOG_LEVEL = "INFO"
    #: One JSON object per log line, request lines included; plain text when `false`, one
    #: line per record: control characters (CR, LF, ESC, U+2028...) written as escapes,
    #: traceback lines indented.
    LOG_JSON = True
    #: The app's own line per request (`auth_service.request`). `gunicorn.conf.py` sets
    #: `false`: gunicorn's access line carries the same fields, the user id included.
    LOG_REQUESTS = True
    # With 0 a client cannot spoof its IP or scheme.
    #: Number of proxies in front (nginx: `1`); only then are `X-Forwarded-For/-Proto/-Host`
    #: believed (werkzeug ProxyFix).
    TRUSTED_PROXIES = 0
    #: Largest request body in bytes (413 beyond it).
    MAX_CONTENT_LENGTH = 64 * 1024

    # Tokens (auth_service/security/jwt_checks.py) and the keys that sign them
    # (auth_service/security/signing_keys.py, docs/tokens-and-sessions.md).
    #: Algorithm of the signing key: `ES256` (P-256), `EdDSA` (Ed25519), `RS256` (RSA
    #: 2048) or `HS256` (legacy: `JWT_SECRET_KEY`, which every verifier must then hold;
    #: never published). Changing it starts a rotation: tokens already issued keep working.
    JWT_ALGORITHM = "ES256"
    #: `iss` of every token, and `issuer` of the discovery documents. Unset:
    #: `PUBLIC_BASE_URL`, or `auth_service` when that is unset too.
    JWT_ISSUER: str | None = None
    #: Comma-separated `aud` of access tokens: the APIs that accept them (a resource
    #: server checks that its own name is among them).
    JWT_AUDIENCE: tuple = ("api",)
    #: `Cache-Control: max-age` of `/.well-known/jwks.json`, and how long a new key is
    #: published before it signs (so no verifier's cached JWKS lacks it).
    JWKS_CACHE_SECONDS = 300
    #: Seconds after which each process reads the signing keys again: a rotation reaches
    #: every instance within this time, without a restart (a revoked key's tokens are
    #: refused at once everywhere; its JWKS entry goes within this time).
    JWKS_REFRESH_SECONDS = 30

    # Prometheus metrics (docs/operations.md#metrics). Under gunicorn the workers count
    # into PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py), which /metrics sums.
    #: Count requests, logins, refreshes, emails, rate limits, hashes and database errors,
    #: and serve them at `GET /metrics` (Prometheus text format); off: `/metrics` is a 404.
    METRICS_ENABLED = False
    #: Comma-separated networks (CIDR) whose addresses may read `/metrics`, as the app
    #: sees the client (after `TRUSTED_PROXIES`); others get a 403. nginx does not pass
    #: `/metrics` on: let Prometheus reach each instance directly.
    METRICS_ALLOW: tuple = ("127.0.0.1/32", "::1/128")

    # Tokens. The algorithm is pinned in code (see auth_service.security.jwt_checks).
    #: Access token lifetime in seconds.
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
    #: Session (refresh token family) lifetime in seconds from login; rotation never extends it.
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=7)
    #: Clock skew in seconds allowed when checking `exp` and `nbf`.
    JWT_DECODE_LEEWAY = 0
    # Two tabs presenting one refresh token at once (bench/results/2026-12-06-grace-window.md).
    #: Seconds in which a spent refresh token returns the same child once instead of
    #: revoking the session.
    REFRESH_REUSE_GRACE_SECONDS = 2
    #: Seconds since sign-in within which a password-less account may link a provider
    #: (accounts with a password confirm with it instead), and any account may enrol an
    #: authenticator app without confirming with its password.
    REAUTHENTICATION_MAX_AGE = timedelta(minutes=5)
    # Two-step verification (docs/two-step-verification.md).
    #: Seconds an `mfa_token` (the login's second step) stays usable.
    MFA_TOKEN_EXPIRES = timedelta(minutes=5)
    #: Wrong codes an `mfa_token` takes before it is dead.
    MFA_TOKEN_MAX_ATTEMPTS = 5
    #: Issuer name authenticator apps show next to the account.
    MFA_ISSUER = "auth_service"
    # Passkeys (docs/passkeys.md). Browsers refuse an IP address as the RP ID, hence
    # localhost for a PUBLIC_BASE_URL on 127.0.0.1 or ::1.
    #: WebAuthn relying party id: the domain passkeys are bound to (the page's host or a
    #: parent domain of it). Unset: the host of `PUBLIC_BASE_URL` (`localhost` for an IP
    #: address). Changing it makes every registered passkey unusable.
    WEBAUTHN_RP_ID: str | None = None
    #: Name the browser shows when it creates a passkey.
    WEBAUTHN_RP_NAME = "auth_service"
    #: Comma-separated origins (`https://app.example.com`) whose pages may run passkey
    #: ceremonies; every one must be on `WEBAUTHN_RP_ID` or a subdomain of it. Unset: the
    #: origin of `PUBLIC_BASE_URL` (which serves `/demo/`; with `localhost` beside an IP
    #: address) and the `CORS_ORIGINS` on the RP ID.
    WEBAUTHN_ORIGINS: tuple = ()
    #: Where login and change-password put the refresh token: `both` (seed compatible),
    #: `cookie` or `body`.
    LOGIN_REFRESH_TRANSPORT = "both"

    # Refresh cookie (flask-jwt-extended's own keys).
    #: `Secure` flag of the cookies.
    JWT_COOKIE_SECURE = True
    #: `SameSite` of the cookies (`None` requires `JWT_COOKIE_SECURE`).
    JWT_COOKIE_SAMESITE = "Lax"
    #: Cookie domain; unset: host-only cookies.
    JWT_COOKIE_DOMAIN: str | None = None
    #: Name of the HttpOnly refresh cookie.
    JWT_REFRESH_COOKIE_NAME = "refresh_token_cookie"
    #: Path of the refresh cookie (refresh and logout live under it).
    JWT_REFRESH_COOKIE_PATH = "/auth"
    #: Name of the readable cookie holding the CSRF value.
    JWT_REFRESH_CSRF_COOKIE_NAME = "csrf_refresh_token"
    #: Path of the CSRF cookie.
    JWT_REFRESH_CSRF_COOKIE_PATH = "/"
    #: Header that must repeat the CSRF value on requests the cookie authenticates.
    JWT_REFRESH_CSRF_HEADER_NAME = "X-CSRF-TOKEN"
    # A sibling subdomain cannot plant a __Host- cookie (browsers take them only Secure,
    # Path=/ and host-only); over http browsers refuse them.
    #: Name of Flask's session cookie, which only the Google/GitHub login uses (it carries
    #: the state). Unset: `__Host-session` when `JWT_COOKIE_SECURE` is true, `session` otherwise.
    SESSION_COOKIE_NAME: str | None = None

    #: Comma-separated exact origins (`https://app.example.com`) whose pages may call the
    #: API with credentials (docs/browser-apps.md); empty: no CORS headers at all,
    #: same-origin pages only.
    CORS_ORIGINS: tuple = ()
    #: Serve the example single-page app at `/demo/` (`auth_service/demo/`).
    DEMO_ENABLED = False

    # Passwords: argon2id, OWASP minimum (m=19 MiB, t=2, p=1).
    #: argon2id iterations.
    ARGON2_TIME_COST = 2
    #: argon2id memory in KiB (19 MiB: OWASP's minimum).
    ARGON2_MEMORY_COST = 19 * 1024
    #: argon2id lanes; libsodium computes one lane, other values are hashed by argon2-cffi
    #: (slower).
    ARGON2_PARALLELISM = 1
    # More at once than cores slows every one of them (auth_service/security/passwords.py);
    # with cores / workers the instance as a whole hashes on every core and no more.
    #: Password hashes one process computes at once; further logins wait for a slot.
    #: `0`: one per core of the process (`gunicorn.conf.py` sets cores ÷ workers).
    ARGON2_CONCURRENCY = 0
    #: Shortest password accepted (no composition rules).
    PASSWORD_MIN_LENGTH = 8
    #: Longest password accepted.
    PASSWORD_MAX_LENGTH = 128
    # Score 0 is under 10^3 guesses.
    #: Lowest zxcvbn score (0-4) accepted for a new password, with the account's email,
    #: username and name as known words; `1` refuses common passwords (`password123`,
    #: `qwertyuiop`) and account-derived ones, `0` switches the check off.
    PASSWORD_MIN_STRENGTH = 1

    # Rate limits (auth_service/security/limits.py, counted with the `limits` library).
    #: Redis for the rate-limit counters shared by every instance (`redis://host:6379/0`);
    #: unset: in memory, per process.
    REDIS_URL: str | None = None
    #: The rate limits' switch; `false` only for local experiments.
    RATELIMIT_ENABLED = True
    #: Storage of the rate-limit counters, a `limits` storage URI (set from `REDIS_URL`
    #: when that is given).
    RATELIMIT_STORAGE_URI = "memory://"
    #: Window strategy: `moving-window`, `fixed-window` or `sliding-window-counter`.
    RATELIMIT_STRATEGY = "moving-window"
    #: Prefix of the counters' keys.
    RATELIMIT_KEY_PREFIX = "auth_service"
    #: Seconds to wait for Redis to connect or answer before a limited request gives up.
    RATELIMIT_STORAGE_TIMEOUT = 0.5
    # With the counters' storage down, the login, password, signup and email limits
    # answer 503: no fallback to per-process memory, which would multiply every limit
    # by the number of workers. Refresh, CSRF and provider logins go on uncounted.
    # IPv4 clients are keyed by address, IPv6 clients by their /64.
    #: Login attempts per client IP (password spraying).
    RATELIMIT_LOGIN_PER_IP = "20 per minute;200 per hour"
    # Wrong passwords are counted before the hash is checked
    # (auth_service/security/password_attempts.py).
    #: Wrong passwords per client IP, at login, change-password and account deletion alike.
    RATELIMIT_LOGIN_FAILURES_PER_IP = "20 per minute;200 per hour"
    #: Wrong passwords per account from one IP (throttles the attacker's address only).
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP = "5 per minute;20 per hour"
    #: Wrong passwords per account from anywhere (distributed guessing); not applied to a
    #: browser holding the account's device cookie.
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "30 per 15 minutes"
    # So that failures from elsewhere cannot lock the owner out.
    #: Wrong passwords per device cookie, in place of the per-account limit.
    RATELIMIT_LOGIN_FAILURES_PER_DEVICE = "10 per 15 minutes"
    # However many device cookies an attacker holds, guessing stops here.
    #: Wrong passwords per account, device cookie or not: the ceiling above the
    #: per-device budgets.
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CEILING = "100 per 15 minutes"
    #: Life in seconds of the signed device cookie (`auth_device`, path `/auth`) a
    #: successful sign-in sets (auth_service/security/devices.py).
    DEVICE_COOKIE_MAX_AGE = timedelta(days=90)
    #: Signups per client IP.
    RATELIMIT_SIGNUP = "5 per minute;50 per day"
    #: Refreshes (and `GET /auth/csrf`) per client IP.
    RATELIMIT_REFRESH = "60 per minute"
    #: Password changes per client IP.
    RATELIMIT_PASSWORD_CHANGE = "5 per minute;20 per hour"
    #: Verification resends per client IP.
    RATELIMIT_VERIFY_RESEND_PER_IP = "10 per hour"
    #: Verification resends per account.
    RATELIMIT_VERIFY_RESEND_PER_ACCOUNT = "3 per 15 minutes;10 per day"
    #: Forgot-password requests per client IP.
    RATELIMIT_FORGOT_PASSWORD_PER_IP = "5 per minute;30 per hour"
    #: Forgot-password requests per requested address, whether or not it has an account
    #: (so a 429 reveals nothing).
    RATELIMIT_FORGOT_PASSWORD_PER_ACCOUNT = "3 per 15 minutes;10 per day"
    #: Provider logins and provider callbacks per client IP.
    RATELIMIT_OAUTH = "30 per minute;300 per hour"

    # Google and GitHub login (auth_service/integrations/oauth_providers.py).
    #: Google OAuth client id; Google login is enabled only when it and the secret are set.
    GOOGLE_CLIENT_ID: str | None = None
    #: Google OAuth client secret.
    GOOGLE_CLIENT_SECRET: str | None = None
    #: Google's OpenID discovery document; the ID token's issuer must be this URL without
    #: `/.well-known/openid-configuration`.
    GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
    #: GitHub OAuth app's client id; GitHub login is enabled only when it and the secret
    #: are set.
    GITHUB_CLIENT_ID: str | None = None
    #: GitHub OAuth app's client secret.
    GITHUB_CLIENT_SECRET: str | None = None
    #: GitHub's authorisation endpoint.
    GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
    #: GitHub's token endpoint.
    GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
    #: GitHub REST API base (`/user`, `/user/emails`).
    GITHUB_API_URL = "https://api.github.com/"
    #: Seconds to wait for any provider answer (discovery, keys, token, API); beyond it
    #: the callback answers 502.
    OAUTH_HTTP_TIMEOUT = 10.0
    #: Scheme and host the providers send the browser back to (`https://auth.example.com`);
    #: must match the redirect URIs registered at the providers. Unset: the login
    #: request's host.
    OAUTH_CALLBACK_BASE_URL: str | None = None
    #: Where the browser lands after a provider login, with the refresh and CSRF cookies
    #: set and no token in the URL (unset: the callback answers JSON like `/auth/login`).
    #: Also where reset links open (`/reset-password?token=`) and where the verification
    #: link redirects (`/verify-email#token=`, which the page POSTs to
    #: `/auth/verify-email`; `/verify-email?status=` for already verified or bad links).
    FRONTEND_URL: str | None = None
    #: Comma-separated origins (`https://app.example.com`), URL prefixes
    #: (`https://app.example.com/auth/done`) or local paths (`/welcome`) that a login's
    #: `?next=` may name.
    OAUTH_REDIRECT_ALLOWLIST: tuple = ()

    # Email links (auth_service/security/link_tokens.py).
    # The request's Host header is the client's choice, so links never come from it.
    #: This API as clients reach it (`https://auth.example.com`, a path prefix allowed):
    #: email links are built from it, never from the request. Unset: no email with a
    #: link is sent (an error is logged).
    PUBLIC_BASE_URL: str | None = None
    #: Lifetime in seconds of a verification link.
    EMAIL_VERIFY_TOKEN_MAX_AGE = timedelta(hours=48)
    #: Lifetime in seconds of a password reset link.
    PASSWORD_RESET_TOKEN_MAX_AGE = timedelta(hours=1)

    # Alerts to users (auth_service/services/alerts.py, docs/audit.md): emails that
    # tell of a security change, each with nothing that could be used to sign in.
    #: Email on a sign-in from a device the account has not used in NEW_DEVICE_DAYS.
    ALERT_NEW_SIGN_IN = True
    #: Days a device (its device cookie, or browser family plus IP /24 or /48) stays known.
    NEW_DEVICE_DAYS = 90
    #: Email when a reused refresh token ended a session.
    ALERT_REFRESH_REUSE = True
    #: Email when the password was changed or reset.
    ALERT_PASSWORD_CHANGED = True
    #: Email when a Google/GitHub identity was linked or unlinked.
    ALERT_IDENTITY_CHANGES = True

    # Outgoing mail (auth_service/integrations/mail.py). SMTP sends run after the commit
    # on background threads, so a slow mail server never delays a request.
    #: `smtp` sends; `console` writes each email, link included, to the log.
    MAIL_BACKEND = "smtp"
    #: SMTP server host.
    MAIL_SERVER = "localhost"
    #: SMTP server port.
    MAIL_PORT = 25
    #: STARTTLS (port 587); the certificate is verified.
    MAIL_USE_TLS = False
    #: TLS from the first byte (port 465); excludes `MAIL_USE_TLS`.
    MAIL_USE_SSL = False
    #: SMTP login name (the server is logged in to only when it is set).
    MAIL_USERNAME: str | None = None
    #: SMTP password.
    MAIL_PASSWORD: str | None = None
    #: `From` of every email.
    MAIL_FROM = "auth_service <no-reply@localhost>"
    #: Seconds any one SMTP socket operation may take before the send is given up and logged.
    MAIL_TIMEOUT = 10

    # OpenAPI documentation. Off in production unless asked for: the pages are for
    # developers, and the document maps every endpoint.
    #: Serve `/docs`, `/redoc`, `/openapi.json` and `/docs/assets/`; off, they answer 404.
    API_DOCS_ENABLED = False
    # flask-smorest's own keys. The pages load Swagger UI and ReDoc from this package
    # (auth_service/docs_assets/, at /docs/assets/); their CSP allows no other origin.
    #: Title of the OpenAPI document.
    API_TITLE = "auth_service"
    #: Version in the OpenAPI document.
    API_VERSION = "1.0.0"
    #: OpenAPI version of the document (flask-smorest).
    OPENAPI_VERSION = "3.0.3"
    #: Prefix of the document and its pages.
    OPENAPI_URL_PREFIX = "/"
    #: Path of the document under the prefix.
    OPENAPI_JSON_PATH = "openapi.json"
    #: Swagger UI page.
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    #: Where Swagger UI's assets load from (pinned copies in `auth_service/docs_assets/`;
    #: the page's CSP allows scripts from this origin only).
    OPENAPI_SWAGGER_UI_URL = "/docs/assets/swagger-ui/"
    #: ReDoc page.
    OPENAPI_REDOC_PATH = "/redoc"
    #: ReDoc's script (a pinned copy, as for Swagger UI).
    OPENAPI_REDOC_URL = "/docs/assets/redoc/redoc.standalone.js"

    def validate(self, settings: dict) -> None:
        """Refuse to start with secrets that are missing, short, guessable or shared."""
        for key in ("SECRET_KEY", "JWT_SECRET_KEY"):
            check_secret(key, settings.get(key) or "")
        check_encryption_key(settings.get("KEY_ENCRYPTION_KEY") or "")
        if hmac.compare_digest(
            settings["SECRET_KEY"].encode(), settings["JWT_SECRET_KEY"].encode()
        ):
            raise ConfigError(
                "SECRET_KEY and JWT_SECRET_KEY must differ: give each its own "
                f"random value ({SECRET_ADVICE})."
            )


class ProductionConfig(Config):
    """Production: the base settings, secrets required."""


class DevelopmentConfig(Config):
    """Development (``make run``): plain http on localhost, generated secrets."""

    APP_ENV = "development"
    # make run serves plain http, where a Secure cookie would never be sent back.
    JWT_COOKIE_SECURE = False
    LOG_LEVEL = "DEBUG"
    LOG_JSON = False
    # Emails go to the log, links pointing at make run.
    MAIL_BACKEND = "console"
    # The example SPA at http://127.0.0.1:8000/demo/.
    DEMO_ENABLED = True
    API_DOCS_ENABLED = True
    PUBLIC_BASE_URL = f"http://127.0.0.1:{PORT}"

    def validate(self, settings: dict) -> None:
        """Generate the missing secrets, then hold the ones given to production's rules:
        a development .env is where a weak or shared secret starts its way to production."""
        ensure_dev_secrets(settings)
        try:
            super().validate(settings)
        except ConfigError as refused:
            raise ConfigError(
                f"{refused} Or leave it empty in development: one is generated "
                f"into {DEV_SECRETS_FILE}."
            ) from None


class TestingConfig(Config):
    """Test suite: cheap hashing, secrets new every run, database from TEST_DATABASE_URL;
    no other environment variable is read."""

    APP_ENV = "testing"
    TESTING = True
    # New for every run of the suite: no published secret can sign a token.
    SECRET_KEY = secrets.token_urlsafe(48)
    JWT_SECRET_KEY = secrets.token_urlsafe(48)
    KEY_ENCRYPTION_KEY = random_encryption_key()
    DATABASE_URL = TEST_DATABASE_URL
    # Cheapest argon2id parameters: the suite hashes hundreds of passwords.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    ARGON2_PARALLELISM = 1
    # Limits stay on, generous enough for functional tests; tests/security tightens them.
    RATELIMIT_LOGIN_PER_IP = "1000 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_IP = "1000 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP = "1000 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "1000 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_DEVICE = "1000 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CEILING = "1000 per minute"
    RATELIMIT_SIGNUP = "1000 per minute"
    RATELIMIT_REFRESH = "1000 per minute"
    RATELIMIT_PASSWORD_CHANGE = "1000 per minute"
    RATELIMIT_OAUTH = "1000 per minute"
    RATELIMIT_VERIFY_RESEND_PER_IP = "1000 per minute"
    RATELIMIT_VERIFY_RESEND_PER_ACCOUNT = "1000 per minute"
    RATELIMIT_FORGOT_PASSWORD_PER_IP = "1000 per minute"
    RATELIMIT_FORGOT_PASSWORD_PER_ACCOUNT = "1000 per minute"
    API_DOCS_ENABLED = True
    # Emails are logged unless a test starts an SMTP server (tests/mail).
    MAIL_BACKEND = "console"
    MAIL_FROM = "auth_service <no-reply@auth.example.test>"
    PUBLIC_BASE_URL = "https://auth.example.test"
    # Tests pin every setting; a developer's shell or .env must not change them.
    READ_ENVIRONMENT = False


CONFIGS = {
    "production": ProductionConfig,
    "development": DevelopmentConfig,
}


def config_class_from_env() -> type[Config]:
    """The config class named by APP_ENV (production when unset).

    TestingConfig is not among them: the test suite passes it to create_app, and no
    environment variable can give a deployment its cheap hashing.
    """
    name = os.environ.get("APP_ENV", "production").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        reserved = " (testing is for the test suite alone)" if name == "testing" else ""
        raise ConfigError(
            f"APP_ENV must be one of {', '.join(CONFIGS)}, not {name!r}{reserved}"
        ) from None


@lru_cache(maxsize=16)
def estimated_secret_bits(value: str) -> float:
    """Bits a guesser needs for ``value`` (its first 72 characters, zxcvbn's limit).

    zxcvbn prices words, keyboard walks, repeats and runs as what they are and anything
    else at ten guesses a character. A value drawn from one generator's alphabet (hex,
    base64, digits) in which zxcvbn finds no more structure than chance leaves is
    priced at that alphabet's size instead: log2(16) bits for each hex digit.
    """
    from zxcvbn import zxcvbn

    sample = value[:72]
    zxcvbn_bits = zxcvbn(sample)["guesses_log10"] * math.log2(10)
    body = sample.rstrip("=")  # base64 padding
    for alphabet, chance_bits in RANDOM_ALPHABETS:
        if body and set(body) <= alphabet:
            structure = len(sample) * math.log2(10) - zxcvbn_bits
            if structure > chance_bits * len(sample) or _few_steps(body):
                return zxcvbn_bits
            return len(body) * math.log2(len(alphabet))
    return zxcvbn_bits


def _few_steps(value: str) -> bool:
    """Whether neighbouring characters differ by at most four distinct steps: a repeat or
    a run, interleaved ones included (aAbBcC), which zxcvbn does not always see."""
    return len({ord(b) - ord(a) for a, b in zip(value, value[1:], strict=False)}) <= 4


def check_secret(key: str, value: str) -> None:
    """Refuse a secret that is missing, short, a placeholder, published or guessable."""
    if len(value) < MIN_SECRET_LENGTH or value.lower() in PLACEHOLDER_SECRETS:
        raise ConfigError(
            f"{key} must be set to a random value of at least "
            f"{MIN_SECRET_LENGTH} characters ({SECRET_ADVICE})."
        )
    if value.lower() in PUBLISHED_SECRETS:
        raise ConfigError(
            f"{key} is a published example key or the hash of a common word: "
            f"set it to a new random value ({SECRET_ADVICE})."
        )
    bits = estimated_secret_bits(value)
    if bits < MIN_SECRET_BITS:
        raise ConfigError(
            f"{key} is too easy to guess (about {bits:.0f} bits, at least "
            f"{MIN_SECRET_BITS} needed): set it to a long random value "
            f"({SECRET_ADVICE})."
        )


def check_encryption_key(value: str) -> None:
    """KEY_ENCRYPTION_KEY must be 32 bytes in base64 (an AES-256 key)."""
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        key = b""
    if len(key) != ENCRYPTION_KEY_BYTES:
        raise ConfigError(
            f"KEY_ENCRYPTION_KEY must be {ENCRYPTION_KEY_BYTES} random bytes in base64 "
            f"({ENCRYPTION_KEY_ADVICE})."
        )


def _coerce(key: str, raw: str, default):
    """Parse an environment string into the type of the setting's default."""
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, timedelta):
            return timedelta(seconds=int(raw))
        if isinstance(default, (list, tuple)):
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a valid {type(default).__name__}") from None
    return raw or None


def database_uri(url: str) -> str:
    """Map postgres:// and postgresql:// to the psycopg2 driver explicitly."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _check_mail_settings(settings: dict) -> None:
    """Refuse mail and link settings that could only fail later, at the first email."""
    if settings["MAIL_BACKEND"] not in ("smtp", "console"):
        raise ConfigError("MAIL_BACKEND must be smtp or console")
    if settings["MAIL_USE_TLS"] and settings["MAIL_USE_SSL"]:
        raise ConfigError("MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL exclude each other")
    url = settings["PUBLIC_BASE_URL"]
    if url is not None:
        parts = urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ConfigError(
                "PUBLIC_BASE_URL must be an absolute http(s) URL without "
                "query or fragment, e.g. https://auth.example.com"
            )


def _on_rp_id(origin: str, rp_id: str) -> bool:
    """Whether a page of ``origin`` may use ``rp_id`` (its host, or a parent domain)."""
    host = (urlsplit(origin).hostname or "").lower()
    return host == rp_id or host.endswith("." + rp_id)


def _webauthn_relying_party(settings: dict) -> None:
    """WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS, derived from PUBLIC_BASE_URL and CORS_ORIGINS
    when unset; origins off the RP ID are refused (no browser would sign for them).
    Without an RP ID passkeys are off, and the origins unused."""
    base = settings["PUBLIC_BASE_URL"]
    parts = urlsplit(base) if base else None
    rp_id = settings["WEBAUTHN_RP_ID"]
    if rp_id is None and parts is not None:
        rp_id = parts.hostname
        if _is_ip_address(rp_id):
            rp_id = "localhost"
    if rp_id is not None:
        rp_id = rp_id.lower()
    settings["WEBAUTHN_RP_ID"] = rp_id
    origins = list(settings["WEBAUTHN_ORIGINS"])
    if not origins and rp_id is not None and parts is not None:
        own = f"{parts.scheme}://{parts.netloc}"
        origins = [own]
        if _is_ip_address(parts.hostname):
            port = f":{parts.port}" if parts.port else ""
            origins.append(f"{parts.scheme}://localhost{port}")
        origins += [origin for origin in settings["CORS_ORIGINS"] if _on_rp_id(origin, rp_id)]
        origins = [origin for origin in dict.fromkeys(origins) if _on_rp_id(origin, rp_id)]
    for origin in origins if rp_id is not None else ():
        if not _on_rp_id(origin, rp_id):
            raise ConfigError(
                f"WEBAUTHN_ORIGINS: {origin} is not on WEBAUTHN_RP_ID ({rp_id}): set "
                "WEBAUTHN_RP_ID to its host or a parent domain of it"
            )
    settings["WEBAUTHN_ORIGINS"] = origins


def _is_ip_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return True


# RATELIMIT_* settings that are not limit strings.
NOT_LIMITS = {
    "RATELIMIT_ENABLED",
    "RATELIMIT_STORAGE_URI",
    "RATELIMIT_STORAGE_TIMEOUT",
    "RATELIMIT_STRATEGY",
    "RATELIMIT_KEY_PREFIX",
}


def is_limit_setting(key: str) -> bool:
    """Whether the setting ``key`` holds a limit string ("5 per minute;20 per hour")."""
    return key.startswith("RATELIMIT_") and key not in NOT_LIMITS


def _check_limits(settings: dict) -> None:
    """Refuse a limit string that does not parse, or an unknown strategy: at request time
    it would be a 500 at every limited request."""
    for key, value in settings.items():
        if not is_limit_setting(key):
            continue
        try:
            parse_many(value or "")
        except ValueError as exc:
            raise ConfigError(
                f"{key}={value!r} is not a rate limit ({exc}); write e.g. "
                "'5 per minute;20 per hour'"
            ) from None
    if settings["RATELIMIT_STORAGE_TIMEOUT"] <= 0:
        raise ConfigError("RATELIMIT_STORAGE_TIMEOUT must be a positive number of seconds")
    if settings["RATELIMIT_STRATEGY"] not in STRATEGIES:
        raise ConfigError(f"RATELIMIT_STRATEGY must be one of {', '.join(sorted(STRATEGIES))}")


# The values of JWT_ALGORITHM (auth_service/security/key_material.py signs with them).
JWT_ALGORITHMS = ("ES256", "EdDSA", "RS256", "HS256")
# The issuer of tokens before JWT_ISSUER existed.
DEFAULT_ISSUER = "auth_service"


def _check_token_settings(settings: dict) -> None:
    """Refuse an unknown algorithm, no audience or a key-refresh time that is no time;
    fill in the issuer."""
    if settings["JWT_ALGORITHM"] not in JWT_ALGORITHMS:
        raise ConfigError(f"JWT_ALGORITHM must be one of {', '.join(JWT_ALGORITHMS)}")
    if not settings["JWT_AUDIENCE"]:
        raise ConfigError("JWT_AUDIENCE must name at least one audience (comma-separated)")
    if settings["JWKS_REFRESH_SECONDS"] < 1 or settings["JWKS_CACHE_SECONDS"] < 0:
        raise ConfigError(
            "JWKS_REFRESH_SECONDS must be at least 1 and JWKS_CACHE_SECONDS at least 0"
        )
    settings["JWT_ISSUER"] = settings["JWT_ISSUER"] or settings["PUBLIC_BASE_URL"] or DEFAULT_ISSUER


def _check_metrics_allow(networks) -> None:
    """Refuse a METRICS_ALLOW entry that is not a network: it would allow nobody."""
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"METRICS_ALLOW: {network!r} is not a network (write 10.0.0.0/8 or ::1/128)"
            ) from None


def _name_session_cookie(settings: dict) -> None:
    """SESSION_COOKIE_NAME by JWT_COOKIE_SECURE (which the session cookie's Secure follows)."""
    name, secure = settings["SESSION_COOKIE_NAME"], settings["JWT_COOKIE_SECURE"]
    if name is None:
        settings["SESSION_COOKIE_NAME"] = "__Host-session" if secure else "session"
    elif name.startswith(("__Host-", "__Secure-")) and not secure:
        raise ConfigError(
            "SESSION_COOKIE_NAME with a __Host- or __Secure- prefix requires "
            "JWT_COOKIE_SECURE=true (browsers refuse it without Secure)"
        )


def load_config(config_class: type[Config], environ=None) -> dict:
    """Collect the settings of ``config_class``, environment variables winning."""
    environ = os.environ if environ is None else environ
    settings = {key: getattr(config_class, key) for key in dir(config_class) if key.isupper()}
    if settings.pop("READ_ENVIRONMENT", True):
        for key, default in list(settings.items()):
            if key in environ:
                settings[key] = _coerce(key, environ[key], default)
    settings["SQLALCHEMY_DATABASE_URI"] = database_uri(settings["DATABASE_URL"])
    if not settings["API_DOCS_ENABLED"]:
        # Without a URL prefix flask-smorest serves neither the document nor its pages.
        settings["OPENAPI_URL_PREFIX"] = None
    if settings["LOGIN_REFRESH_TRANSPORT"] not in ("both", "cookie", "body"):
        raise ConfigError("LOGIN_REFRESH_TRANSPORT must be both, cookie or body")
    if settings["ARGON2_CONCURRENCY"] < 0:
        raise ConfigError("ARGON2_CONCURRENCY must be 0 (one per core) or a positive number")
    if settings["JWT_COOKIE_SAMESITE"] == "None" and not settings["JWT_COOKIE_SECURE"]:
        raise ConfigError("JWT_COOKIE_SAMESITE=None requires JWT_COOKIE_SECURE=true")
    _check_token_settings(settings)
    _name_session_cookie(settings)
    _check_mail_settings(settings)
    _check_limits(settings)
    _webauthn_relying_party(settings)

    _check_metrics_allow(settings["METRICS_ALLOW"])
    config_class().validate(settings)
    return settings


# Development-only secrets, generated once and kept in instance/.
DEV_SECRETS_FILE = INSTANCE_DIR / "dev-secrets.json"
# How each generated development secret is made.
DEV_SECRET_MAKERS = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "JWT_SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "KEY_ENCRYPTION_KEY": random_encryption_key,
}


def ensure_dev_secrets(settings: dict) -> None:
    """Fill missing SECRET_KEY, JWT_SECRET_KEY and KEY_ENCRYPTION_KEY from a generated,
    persisted file.

    Kept on disk so that tokens survive a restart of ``make run``.
    """
    missing = [k for k in DEV_SECRET_MAKERS if not settings.get(k)]
    if not missing:
        return
    stored = {}
    if DEV_SECRETS_FILE.exists():
        stored = json.loads(DEV_SECRETS_FILE.read_text())
    if any(key not in stored for key in missing):
        for key in missing:
            stored.setdefault(key, DEV_SECRET_MAKERS[key]())
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        DEV_SECRETS_FILE.touch(mode=0o600)
        DEV_SECRETS_FILE.write_text(json.dumps(stored, indent=2))
        print(
            f"auth_service: generated development secrets for {', '.join(missing)} "
            f"in {DEV_SECRETS_FILE} (set them in .env or the environment to choose your own)",
            file=sys.stderr,
        )
    for key in missing:
        settings[key] = stored[key]
