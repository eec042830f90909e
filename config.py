"""Settings for auth_service.

Every upper-case attribute of a config class is a setting. Each one can be
overridden by an environment variable of the same name (``.env`` is read for
development, real environment variables win over it). ``load_config`` turns the
strings into the type of the default: booleans, integers, lists (comma
separated) and durations (seconds).
"""

from __future__ import annotations

import hashlib
import hmac
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

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

# Real environment variables override .env (override=False keeps them).
load_dotenv(BASE_DIR / ".env", override=False)

MIN_SECRET_LENGTH = 32
# Bits a production secret must be worth to a guesser (estimated_secret_bits).
MIN_SECRET_BITS = 128
SECRET_ADVICE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
# Values that a copied .env.example or a tutorial would leave behind.
PLACEHOLDER_SECRETS = {"change-me", "changeme", "secret", "dev", "development"}
# Random-looking values that are public: tutorial keys copied into configs (FastAPI's
# OAuth2/JWT tutorial, Flask's SECRET_KEY docs) and the hex digests of common words
# ("secret" through sha256 is 64 hex digits, and just as guessable as "secret").
PUBLISHED_SECRETS = frozenset({
    "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    "192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf",
    *(getattr(hashlib, name)(word.encode()).hexdigest()
      for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
      for word in ("secret", "secret-key", "secret_key", "secretkey", "your-secret-key",
                   "your_secret_key", "mysecretkey", "my-secret-key", "supersecret",
                   "super-secret-key", "jwt-secret", "jwt_secret", "jwt-secret-key",
                   "password", "changeme", "change-me", "test", "dev", "development",
                   "production", "admin", "flask", "django", "fastapi", "")),
})
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
    """Base settings: safe for production."""

    APP_ENV = "production"
    TESTING = False
    SECRET_KEY: str | None = None
    JWT_SECRET_KEY: str | None = None
    DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'auth_service.db'}"
    LOG_LEVEL = "INFO"
    # One JSON object per log line (request lines included); plain text when false.
    LOG_JSON = True
    # The app's own line per request (auth_service.request). gunicorn.conf.py turns it
    # off: gunicorn's access line carries the same fields, the user id included.
    LOG_REQUESTS = True
    # Proxies in front of the app (nginx = 1). Only then are X-Forwarded-For/-Proto/-Host
    # believed; with 0 a client cannot spoof its IP or scheme.
    TRUSTED_PROXIES = 0
    # Largest request body accepted, in bytes (413 beyond it).
    MAX_CONTENT_LENGTH = 64 * 1024

    # Tokens. The algorithm is pinned in code (see auth_service.security.jwt_checks).
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=7)
    JWT_ENCODE_ISSUER = "auth_service"
    JWT_DECODE_ISSUER = "auth_service"
    JWT_DECODE_LEEWAY = 0
    # Two tabs presenting one refresh token at once (bench/results/2026-12-06-grace-window.md).
    REFRESH_REUSE_GRACE_SECONDS = 2
    # Where login puts the refresh token: "both" (seed compatible), "cookie" or "body".
    LOGIN_REFRESH_TRANSPORT = "both"

    # Refresh cookie (flask-jwt-extended's own keys).
    JWT_COOKIE_SECURE = True
    JWT_COOKIE_SAMESITE = "Lax"
    JWT_COOKIE_DOMAIN: str | None = None
    JWT_REFRESH_COOKIE_NAME = "refresh_token_cookie"
    JWT_REFRESH_COOKIE_PATH = "/auth"
    JWT_REFRESH_CSRF_COOKIE_NAME = "csrf_refresh_token"
    JWT_REFRESH_CSRF_COOKIE_PATH = "/"
    JWT_REFRESH_CSRF_HEADER_NAME = "X-CSRF-TOKEN"
    # Flask's session cookie, which only the Google/GitHub login uses (it carries the
    # state). Unset: __Host-session when JWT_COOKIE_SECURE is true, so a sibling subdomain
    # cannot plant one (browsers take __Host- cookies only Secure, Path=/ and host-only);
    # plain "session" over http, where browsers refuse __Host- cookies.
    SESSION_COOKIE_NAME: str | None = None

    # Browser apps on other origins (auth_service/security/cors.py): exact origins
    # ("https://app.example.com", comma separated) allowed to call the API with
    # credentials. Empty: no CORS headers at all, same-origin pages only.
    CORS_ORIGINS: tuple = ()
    # The example single-page app at /demo (auth_service/demo/).
    DEMO_ENABLED = False

    # Passwords: argon2id, OWASP minimum (m=19 MiB, t=2, p=1).
    ARGON2_TIME_COST = 2
    ARGON2_MEMORY_COST = 19 * 1024
    ARGON2_PARALLELISM = 1
    # Hashes one process computes at once; further logins wait for a slot. More at once
    # than cores slows every one of them (auth_service/security/passwords.py). 0: one per core of
    # the process. gunicorn.conf.py sets cores / workers, so the instance as a whole
    # hashes on every core and no more.
    ARGON2_CONCURRENCY = 0
    PASSWORD_MIN_LENGTH = 8
    PASSWORD_MAX_LENGTH = 128
    # Lowest zxcvbn score (0-4) accepted; 1 refuses the common-password and
    # account-derived guesses (score 0: under 10^3 guesses). 0 switches it off.
    PASSWORD_MIN_STRENGTH = 1

    # Rate limits (flask-limiter's own keys, then ours). Counters live in Redis
    # when REDIS_URL is set (shared by every instance), in memory otherwise.
    REDIS_URL: str | None = None
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_STRATEGY = "moving-window"
    # flask-limiter would put X-RateLimit-* and Retry-After on every response;
    # errors.py sets Retry-After on the 429 alone.
    RATELIMIT_HEADERS_ENABLED = False
    RATELIMIT_KEY_PREFIX = "auth_service"
    # With the counters' storage down, limited requests answer 503: no fallback to
    # per-process memory, which would multiply every limit by the number of workers.
    # IPv4 clients are keyed by address, IPv6 clients by their /64.
    RATELIMIT_LOGIN_PER_IP = "20 per minute;200 per hour"
    # Wrong passwords at any endpoint that checks one (login, change-password, account
    # deletion), counted before the hash is checked (auth_service/security/password_attempts.py).
    RATELIMIT_LOGIN_FAILURES_PER_IP = "20 per minute;200 per hour"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP = "5 per minute;20 per hour"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "30 per 15 minutes"
    # Replaces the per-account budget for a browser holding the account's device cookie,
    # so failures from elsewhere cannot lock the owner out.
    RATELIMIT_LOGIN_FAILURES_PER_DEVICE = "10 per 15 minutes"
    # Life of the signed device cookie set by a successful sign-in (auth_service/security/devices.py).
    DEVICE_COOKIE_MAX_AGE = timedelta(days=90)
    RATELIMIT_SIGNUP = "5 per minute;50 per day"
    RATELIMIT_REFRESH = "60 per minute"
    RATELIMIT_PASSWORD_CHANGE = "5 per minute;20 per hour"
    # Emails on demand: keyed by client IP and by account (the requested address for
    # forgot-password, whether or not it has an account, so a 429 reveals nothing).
    RATELIMIT_VERIFY_RESEND_PER_IP = "10 per hour"
    RATELIMIT_VERIFY_RESEND_PER_ACCOUNT = "3 per 15 minutes;10 per day"
    RATELIMIT_FORGOT_PASSWORD_PER_IP = "5 per minute;30 per hour"
    RATELIMIT_FORGOT_PASSWORD_PER_ACCOUNT = "3 per 15 minutes;10 per day"
    RATELIMIT_OAUTH = "30 per minute;300 per hour"

    # Google and GitHub login (auth_service/integrations/oauth_providers.py). A provider is enabled
    # only when both its client id and secret are set.
    GOOGLE_CLIENT_ID: str | None = None
    GOOGLE_CLIENT_SECRET: str | None = None
    GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
    GITHUB_CLIENT_ID: str | None = None
    GITHUB_CLIENT_SECRET: str | None = None
    GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
    GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
    GITHUB_API_URL = "https://api.github.com/"
    # Seconds to wait for any answer from a provider (discovery, token, keys, API).
    OAUTH_HTTP_TIMEOUT = 10.0
    # Scheme and host the providers send the browser back to ("https://auth.example.com");
    # unset: the host of the login request.
    OAUTH_CALLBACK_BASE_URL: str | None = None
    # Where the browser lands after a provider login (cookies set, no token in the URL);
    # unset: the callback answers JSON like /auth/login.
    FRONTEND_URL: str | None = None
    # Origins ("https://app.example.com"), URL prefixes or local paths ("/welcome")
    # that a login's ?next= may name.
    OAUTH_REDIRECT_ALLOWLIST: tuple = ()

    # Email links (auth_service/security/link_tokens.py). PUBLIC_BASE_URL is this API as
    # clients reach it ("https://auth.example.com"); links are built from it, never
    # from the request's Host header, which the client chooses. Unset: no
    # verification or reset email can be sent (logged as an error).
    PUBLIC_BASE_URL: str | None = None
    # With FRONTEND_URL (above), reset links open its /reset-password page and
    # GET /auth/verify-email redirects to its /verify-email page with ?status=.
    EMAIL_VERIFY_TOKEN_MAX_AGE = timedelta(hours=48)
    PASSWORD_RESET_TOKEN_MAX_AGE = timedelta(hours=1)

    # Outgoing mail (auth_service/integrations/mail.py): "smtp", or "console" to write each
    # message to the log instead (development). SMTP sends run after the commit on
    # background threads, each socket operation bounded by MAIL_TIMEOUT seconds.
    MAIL_BACKEND = "smtp"
    MAIL_SERVER = "localhost"
    MAIL_PORT = 25
    MAIL_USE_TLS = False  # STARTTLS (port 587)
    MAIL_USE_SSL = False  # TLS from the first byte (port 465)
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_FROM = "auth_service <no-reply@localhost>"
    MAIL_TIMEOUT = 10

    # OpenAPI documentation: /docs, /redoc and /openapi.json. Off in production unless
    # asked for: the pages are for developers, and the document maps every endpoint.
    API_DOCS_ENABLED = False
    # flask-smorest's own keys. The pages load Swagger UI and ReDoc from this package
    # (auth_service/docs_assets/, at /docs/assets/); their CSP allows no other origin.
    API_TITLE = "auth_service"
    API_VERSION = "1.0.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/docs/assets/swagger-ui/"
    OPENAPI_REDOC_PATH = "/redoc"
    OPENAPI_REDOC_URL = "/docs/assets/redoc/redoc.standalone.js"

    def validate(self, settings: dict) -> None:
        """Refuse to start with secrets that are missing, short, guessable or shared."""
        for key in ("SECRET_KEY", "JWT_SECRET_KEY"):
            check_secret(key, settings.get(key) or "")
        if hmac.compare_digest(settings["SECRET_KEY"].encode(),
                               settings["JWT_SECRET_KEY"].encode()):
            raise ConfigError("SECRET_KEY and JWT_SECRET_KEY must differ: give each its own "
                              f"random value ({SECRET_ADVICE}).")


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
    PUBLIC_BASE_URL = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"

    def validate(self, settings: dict) -> None:
        """Generate the missing secrets, then hold the ones given to production's rules:
        a development .env is where a weak or shared secret starts its way to production."""
        ensure_dev_secrets(settings)
        try:
            super().validate(settings)
        except ConfigError as refused:
            raise ConfigError(f"{refused} Or leave it empty in development: one is generated "
                              f"into {DEV_SECRETS_FILE}.") from None


class TestingConfig(Config):
    """Test suite: cheap hashing, fixed secrets, database from TEST_DATABASE_URL."""

    APP_ENV = "testing"
    TESTING = True
    # New for every run of the suite: no published secret can sign a token.
    SECRET_KEY = secrets.token_urlsafe(48)
    JWT_SECRET_KEY = secrets.token_urlsafe(48)
    DATABASE_URL = os.environ.get(
        "TEST_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'test.db'}"
    )
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
    return len({ord(b) - ord(a) for a, b in zip(value, value[1:])}) <= 4


def check_secret(key: str, value: str) -> None:
    """Refuse a secret that is missing, short, a placeholder, published or guessable."""
    if len(value) < MIN_SECRET_LENGTH or value.lower() in PLACEHOLDER_SECRETS:
        raise ConfigError(f"{key} must be set to a random value of at least "
                          f"{MIN_SECRET_LENGTH} characters ({SECRET_ADVICE}).")
    if value.lower() in PUBLISHED_SECRETS:
        raise ConfigError(f"{key} is a published example key or the hash of a common word: "
                          f"set it to a new random value ({SECRET_ADVICE}).")
    bits = estimated_secret_bits(value)
    if bits < MIN_SECRET_BITS:
        raise ConfigError(f"{key} is too easy to guess (about {bits:.0f} bits, at least "
                          f"{MIN_SECRET_BITS} needed): set it to a long random value "
                          f"({SECRET_ADVICE}).")


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
            return "postgresql+psycopg2://" + url[len(prefix):]
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
        if (parts.scheme not in ("http", "https") or not parts.netloc
                or parts.query or parts.fragment):
            raise ConfigError("PUBLIC_BASE_URL must be an absolute http(s) URL without "
                              "query or fragment, e.g. https://auth.example.com")


def _name_session_cookie(settings: dict) -> None:
    """SESSION_COOKIE_NAME by JWT_COOKIE_SECURE (which the session cookie's Secure follows)."""
    name, secure = settings["SESSION_COOKIE_NAME"], settings["JWT_COOKIE_SECURE"]
    if name is None:
        settings["SESSION_COOKIE_NAME"] = "__Host-session" if secure else "session"
    elif name.startswith(("__Host-", "__Secure-")) and not secure:
        raise ConfigError("SESSION_COOKIE_NAME with a __Host- or __Secure- prefix requires "
                          "JWT_COOKIE_SECURE=true (browsers refuse it without Secure)")


def load_config(config_class: type[Config], environ=None) -> dict:
    """Collect the settings of ``config_class``, environment variables winning."""
    environ = os.environ if environ is None else environ
    settings = {
        key: getattr(config_class, key) for key in dir(config_class) if key.isupper()
    }
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
    _name_session_cookie(settings)
    _check_mail_settings(settings)
    config_class().validate(settings)
    return settings


# Development-only secrets, generated once and kept in instance/.
DEV_SECRETS_FILE = INSTANCE_DIR / "dev-secrets.json"


def ensure_dev_secrets(settings: dict) -> None:
    """Fill missing SECRET_KEY / JWT_SECRET_KEY from a generated, persisted file.

    Kept on disk so that tokens survive a restart of ``make run``.
    """
    missing = [k for k in ("SECRET_KEY", "JWT_SECRET_KEY") if not settings.get(k)]
    if not missing:
        return
    stored = {}
    if DEV_SECRETS_FILE.exists():
        stored = json.loads(DEV_SECRETS_FILE.read_text())
    if any(key not in stored for key in missing):
        for key in missing:
            stored.setdefault(key, secrets.token_urlsafe(48))
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
