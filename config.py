"""Settings for auth_service.

Every upper-case attribute of a config class is a setting. Each one can be
overridden by an environment variable of the same name (``.env`` is read for
development, real environment variables win over it). ``load_config`` turns the
strings into the type of the default: booleans, integers, lists (comma
separated) and durations (seconds).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

# Real environment variables override .env (override=False keeps them).
load_dotenv(BASE_DIR / ".env", override=False)

MIN_SECRET_LENGTH = 32
# Values that a copied .env.example or a tutorial would leave behind.
PLACEHOLDER_SECRETS = {"change-me", "changeme", "secret", "dev", "development"}

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
    # Proxies in front of the app (nginx = 1). Only then are X-Forwarded-For/-Proto/-Host
    # believed; with 0 a client cannot spoof its IP or scheme.
    TRUSTED_PROXIES = 0
    # Largest request body accepted, in bytes (413 beyond it).
    MAX_CONTENT_LENGTH = 64 * 1024

    # Tokens. The algorithm is pinned in code (see auth_service.jwt_checks).
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=7)
    JWT_ENCODE_ISSUER = "auth_service"
    JWT_DECODE_ISSUER = "auth_service"
    JWT_DECODE_LEEWAY = 0
    REFRESH_REUSE_GRACE_SECONDS = 10
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

    # Passwords: argon2id, OWASP minimum (m=19 MiB, t=2, p=1).
    ARGON2_TIME_COST = 2
    ARGON2_MEMORY_COST = 19 * 1024
    ARGON2_PARALLELISM = 1
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
    # A Redis outage falls back to per-instance memory counters instead of failing requests.
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_LOGIN_PER_IP = "20 per minute;200 per hour"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP = "5 per minute;20 per hour"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "30 per 15 minutes"
    RATELIMIT_SIGNUP = "5 per minute;50 per day"
    RATELIMIT_REFRESH = "60 per minute"
    RATELIMIT_PASSWORD_CHANGE = "5 per minute;20 per hour"

    # OpenAPI documentation (flask-smorest's own keys).
    API_TITLE = "auth_service"
    API_VERSION = "1.0.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
    OPENAPI_REDOC_PATH = "/redoc"
    OPENAPI_REDOC_URL = "https://cdn.jsdelivr.net/npm/redoc/bundles/redoc.standalone.js"

    def validate(self, settings: dict) -> None:
        """Refuse to start with secrets that are missing, short or placeholders."""
        for key in ("SECRET_KEY", "JWT_SECRET_KEY"):
            value = settings.get(key) or ""
            if len(value) < MIN_SECRET_LENGTH or value.lower() in PLACEHOLDER_SECRETS:
                raise ConfigError(
                    f"{key} must be set to a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(48))')."
                )


class ProductionConfig(Config):
    """Production: the base settings, secrets required."""


class DevelopmentConfig(Config):
    """Development (``make run``): plain http on localhost, generated secrets."""

    APP_ENV = "development"
    # make run serves plain http, where a Secure cookie would never be sent back.
    JWT_COOKIE_SECURE = False
    LOG_LEVEL = "DEBUG"

    def validate(self, settings: dict) -> None:
        """Generate missing secrets instead of refusing (development only)."""
        from auth_service.dev_secrets import ensure_dev_secrets

        ensure_dev_secrets(settings)


class TestingConfig(Config):
    """Test suite: cheap hashing, fixed secrets, database from TEST_DATABASE_URL."""

    APP_ENV = "testing"
    TESTING = True
    SECRET_KEY = "test-secret-key-" + "x" * 32
    JWT_SECRET_KEY = "test-jwt-secret-key-" + "y" * 32
    DATABASE_URL = os.environ.get(
        "TEST_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'test.db'}"
    )
    # Cheapest argon2id parameters: the suite hashes hundreds of passwords.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    ARGON2_PARALLELISM = 1
    # Limits stay on, generous enough for functional tests; tests/security tightens them.
    RATELIMIT_LOGIN_PER_IP = "1000 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP = "1000 per minute"
    RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT = "1000 per minute"
    RATELIMIT_SIGNUP = "1000 per minute"
    RATELIMIT_REFRESH = "1000 per minute"
    RATELIMIT_PASSWORD_CHANGE = "1000 per minute"
    # Tests pin every setting; a developer's shell or .env must not change them.
    READ_ENVIRONMENT = False


CONFIGS = {
    "production": ProductionConfig,
    "development": DevelopmentConfig,
    "testing": TestingConfig,
}


def config_class_from_env() -> type[Config]:
    """The config class named by APP_ENV (production when unset)."""
    name = os.environ.get("APP_ENV", "production").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"APP_ENV must be one of {', '.join(CONFIGS)}, not {name!r}"
        ) from None


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
    if settings["LOGIN_REFRESH_TRANSPORT"] not in ("both", "cookie", "body"):
        raise ConfigError("LOGIN_REFRESH_TRANSPORT must be both, cookie or body")
    if settings["JWT_COOKIE_SAMESITE"] == "None" and not settings["JWT_COOKIE_SECURE"]:
        raise ConfigError("JWT_COOKIE_SAMESITE=None requires JWT_COOKIE_SECURE=true")
    config_class().validate(settings)
    return settings
