"""Settings from the environment, production's refusal of weak secrets, and the API docs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from dotenv import dotenv_values

import config
from auth_service import create_app
from config import (
    ConfigError,
    DevelopmentConfig,
    ProductionConfig,
    TestingConfig,
    config_class_from_env,
    is_limit_setting,
    load_config,
)
from helpers import PRODUCTION_SECRETS as SECRETS
from helpers import ROOT, configuration_generator


def production(**environ) -> dict:
    """load_config(ProductionConfig) with valid secrets plus ``environ``."""
    return load_config(ProductionConfig, environ={**SECRETS, **environ})


# --- environment overrides ------------------------------------------------------------

SETTINGS = sorted(k for k in dir(ProductionConfig) if k.isupper())
# Strings that load_config validates: a value it accepts that differs from the default.
VALID_STRINGS = {
    "LOGIN_REFRESH_TRANSPORT": "cookie",
    "JWT_COOKIE_SAMESITE": "Strict",
    "MAIL_BACKEND": "console",
    "PUBLIC_BASE_URL": "https://auth.example.com",
    "RATELIMIT_STRATEGY": "fixed-window",
    "JWT_ALGORITHM": "EdDSA",
    **{k: v[::-1] + "x" for k, v in SECRETS.items() if k != "KEY_ENCRYPTION_KEY"},
    "KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    **{k: "7 per minute;70 per day" for k in SETTINGS if is_limit_setting(k)},
}

# Lists that load_config validates.
VALID_LISTS = {"METRICS_ALLOW": ("10.0.0.0/8, 192.0.2.7,,", ["10.0.0.0/8", "192.0.2.7"])}


def other_value(key: str, default):
    """(environment string, expected setting) differing from ``default``."""
    if isinstance(default, bool):
        return ("false", False) if default else ("true", True)
    if isinstance(default, int):
        return str(default + 1), default + 1
    if isinstance(default, float):
        return str(default + 0.5), default + 0.5
    if isinstance(default, timedelta):
        seconds = int(default.total_seconds()) + 1
        return str(seconds), timedelta(seconds=seconds)
    if isinstance(default, (list, tuple)):
        return VALID_LISTS.get(key, ("a, b,,", ["a", "b"]))
    value = VALID_STRINGS.get(key, f"{default or ''}-override")
    return value, value


@pytest.mark.parametrize("key", SETTINGS)
def test_every_setting_is_overridable_by_the_environment(key):
    raw, expected = other_value(key, getattr(ProductionConfig, key))
    assert getattr(ProductionConfig, key) != expected
    # The document's settings apply once the docs are on (production's default: off).
    docs = {"API_DOCS_ENABLED": "true"} if key.startswith("OPENAPI_") else {}
    assert production(**docs, **{key: raw})[key] == expected


@pytest.mark.parametrize(
    "key, raw, expected",
    [
        ("JWT_ACCESS_TOKEN_EXPIRES", "60", timedelta(seconds=60)),
        ("JWT_REFRESH_TOKEN_EXPIRES", "86400", timedelta(days=1)),
        ("REFRESH_REUSE_GRACE_SECONDS", "3", 3),
        ("MAX_CONTENT_LENGTH", " 2048 ", 2048),
        ("JWT_COOKIE_SECURE", "false", False),
        ("JWT_COOKIE_SECURE", "FALSE", False),
        ("JWT_COOKIE_SECURE", "0", False),
        ("JWT_COOKIE_SECURE", "no", False),
        ("JWT_COOKIE_SECURE", "off", False),
        ("JWT_COOKIE_SECURE", "", False),
        ("JWT_COOKIE_SECURE", " True ", True),
        ("JWT_COOKIE_SECURE", "1", True),
        ("JWT_COOKIE_SECURE", "yes", True),
        ("JWT_COOKIE_SECURE", "on", True),
        ("JWT_COOKIE_DOMAIN", "example.com", "example.com"),
        ("JWT_COOKIE_DOMAIN", "", None),
        ("LOG_LEVEL", "DEBUG", "DEBUG"),
    ],
)
def test_environment_strings_are_coerced(key, raw, expected):
    value = production(**{key: raw})[key]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "environ, name",
    [
        ({}, "__Host-session"),
        ({"JWT_COOKIE_SECURE": "false"}, "session"),
        ({"SESSION_COOKIE_NAME": "auth_state"}, "auth_state"),
        ({"SESSION_COOKIE_NAME": "auth_state", "JWT_COOKIE_SECURE": "false"}, "auth_state"),
    ],
)
def test_the_session_cookie_is_host_only_wherever_it_is_secure(environ, name):
    assert production(**environ)["SESSION_COOKIE_NAME"] == name


def test_development_keeps_a_plain_session_cookie():
    assert load_config(DevelopmentConfig, environ=SECRETS)["SESSION_COOKIE_NAME"] == "session"


@pytest.mark.parametrize("name", ["__Host-session", "__Secure-session"])
def test_a_prefixed_session_cookie_needs_secure(name):
    with pytest.raises(ConfigError, match="^SESSION_COOKIE_NAME .* requires JWT_COOKIE_SECURE"):
        production(SESSION_COOKIE_NAME=name, JWT_COOKIE_SECURE="false")


@pytest.mark.parametrize(
    "key, raw",
    [
        ("JWT_COOKIE_SECURE", "maybe"),
        ("JWT_COOKIE_SECURE", "2"),
        ("MAX_CONTENT_LENGTH", "64k"),
        ("REFRESH_REUSE_GRACE_SECONDS", "1.5"),
        ("JWT_ACCESS_TOKEN_EXPIRES", "15m"),
        ("JWT_ACCESS_TOKEN_EXPIRES", ""),
        ("ARGON2_TIME_COST", "two"),
        ("ARGON2_CONCURRENCY", "-1"),
    ],
)
def test_malformed_values_are_refused(key, raw):
    with pytest.raises(ConfigError, match=key):
        production(**{key: raw})


LIMIT_SETTINGS = [k for k in SETTINGS if is_limit_setting(k)]


def test_the_limit_settings_are_found():
    assert {
        "RATELIMIT_LOGIN_FAILURES_PER_IP",
        "RATELIMIT_REFRESH",
        "RATELIMIT_OAUTH",
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CEILING",
    } <= set(LIMIT_SETTINGS)
    assert "RATELIMIT_KEY_PREFIX" not in LIMIT_SETTINGS


@pytest.mark.parametrize("raw", ["20 per fortnight", "20 per minute;oops", "twenty per minute", ""])
@pytest.mark.parametrize("key", LIMIT_SETTINGS)
def test_malformed_limits_are_refused_at_start(key, raw):
    # A typo made every login a 500, or silently switched a flask-limiter limit off.
    with pytest.raises(ConfigError, match=f"^{key}=") as refused:
        production(**{key: raw})
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("raw", ["0", "-1"])
def test_the_storage_timeout_must_be_positive(raw):
    with pytest.raises(ConfigError, match="^RATELIMIT_STORAGE_TIMEOUT"):
        production(RATELIMIT_STORAGE_TIMEOUT=raw)


@pytest.mark.parametrize("raw", ["moving_window", "token-bucket", ""])
def test_an_unknown_limit_strategy_is_refused_at_start(raw):
    with pytest.raises(
        ConfigError,
        match="^RATELIMIT_STRATEGY must be one of fixed-window, "
        "moving-window, sliding-window-counter$",
    ):
        production(RATELIMIT_STRATEGY=raw)


@pytest.mark.parametrize(
    "environ",
    [
        {"LOGIN_REFRESH_TRANSPORT": "header"},
        {"JWT_COOKIE_SAMESITE": "None", "JWT_COOKIE_SECURE": "false"},
    ],
)
def test_inconsistent_settings_are_refused(environ):
    with pytest.raises(ConfigError):
        production(**environ)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgres://u:p@db.example:5432/auth", "postgresql+psycopg2://u:p@db.example:5432/auth"),
        ("postgresql://u:p@db.example/auth", "postgresql+psycopg2://u:p@db.example/auth"),
        ("postgresql+psycopg2://u@h/auth", "postgresql+psycopg2://u@h/auth"),
        ("sqlite:////var/lib/auth.db", "sqlite:////var/lib/auth.db"),
    ],
)
def test_database_url_gets_an_explicit_driver(url, expected):
    settings = production(DATABASE_URL=url)
    assert settings["DATABASE_URL"] == url
    assert settings["SQLALCHEMY_DATABASE_URI"] == expected


# --- production secrets ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, "", "x" * 31, "change-me", "CHANGEME", "secret"],
    ids=["missing", "empty", "31-chars", "change-me", "CHANGEME", "secret"],
)
@pytest.mark.parametrize("key", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_weak_secrets(key, value):
    environ = dict(SECRETS)
    if value is None:
        del environ[key]
    else:
        environ[key] = value
    with pytest.raises(ConfigError, match=key):
        load_config(ProductionConfig, environ=environ)


# Long enough, no placeholder, yet guessable: repeats, runs, keyboard walks, words.
GUESSABLE = [
    "a" * 32,
    "s" * 40,
    "ab" * 16,
    "abcdefghijklmnopqrstuvwxyz012345",
    "0123456789" * 4,
    "ZYXWVUTSRQPONMLKJIHGFEDCBA987654",
    "aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpP",
    "test-secret-key-" + "x" * 32,
    "1q2w3e4r5t6y7u8i9o0p" * 2,
    "my-super-secret-key-for-production-2024!",
    "change-me-to-a-long-random-string-please",
    "a" * 200,
    # Drawn from one generator's alphabet (hex, base64url, digits), yet patterned.
    "deadbeef" * 4,
    "0123456789abcdef" * 2,
    "AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "correct-horse-battery-staple-correct-horse",
    "20240101" * 5,
    "1234567890" * 3 + "9876543210",
]


@pytest.mark.parametrize("value", GUESSABLE)
@pytest.mark.parametrize("key", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_guessable_secrets(key, value):
    with pytest.raises(ConfigError) as refused:
        load_config(ProductionConfig, environ={**SECRETS, key: value})
    message = str(refused.value)
    assert message.startswith(f"{key} is too easy to guess")
    assert "\n" not in message
    assert "python -c 'import secrets; print(secrets.token_urlsafe(48))'" in message


@pytest.mark.parametrize(
    "generate",
    [
        lambda: secrets.token_urlsafe(48),
        lambda: secrets.token_urlsafe(32),
        lambda: secrets.token_hex(32),
        lambda: base64.b64encode(os.urandom(32)).decode(),
        lambda: secrets.token_hex(16),
        lambda: secrets.token_hex(16).upper(),
        lambda: "".join(secrets.choice("0123456789") for _ in range(40)),
    ],
    ids=[
        "token_urlsafe(48)",
        "token_urlsafe(32)",
        "token_hex(32)",
        "openssl rand -base64 32",
        "token_hex(16)",
        "openssl rand -hex 16 upper-cased",
        "40 random digits",
    ],
)
def test_production_accepts_random_secrets(generate):
    for _ in range(20):
        environ = {
            "SECRET_KEY": generate(),
            "JWT_SECRET_KEY": generate(),
            "KEY_ENCRYPTION_KEY": SECRETS["KEY_ENCRYPTION_KEY"],
        }
        settings = load_config(ProductionConfig, environ=environ)
        assert (settings["SECRET_KEY"], settings["JWT_SECRET_KEY"]) == (
            environ["SECRET_KEY"],
            environ["JWT_SECRET_KEY"],
        )


PUBLISHED = {
    "FastAPI tutorial": "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    "Flask docs": "192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf",
    "sha256(secret)": hashlib.sha256(b"secret").hexdigest(),
    "sha256(your-secret-key)": hashlib.sha256(b"your-secret-key").hexdigest(),
    "SHA1(password)": hashlib.sha1(b"password").hexdigest().upper(),
    "md5(changeme)": hashlib.md5(b"changeme").hexdigest(),
    "sha512(secret)": hashlib.sha512(b"secret").hexdigest(),
}


@pytest.mark.parametrize("value", PUBLISHED.values(), ids=PUBLISHED.keys())
@pytest.mark.parametrize("key", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_published_secrets(key, value):
    """Random-looking, but printed in tutorials or one hash away from a common word."""
    with pytest.raises(ConfigError) as refused:
        load_config(ProductionConfig, environ={**SECRETS, key: value})
    message = str(refused.value)
    assert message.startswith(f"{key} is a published example key or the hash of a common word")
    assert "\n" not in message


def test_production_refuses_one_secret_for_both_keys():
    shared = secrets.token_urlsafe(48)
    with pytest.raises(ConfigError, match="^SECRET_KEY and JWT_SECRET_KEY must differ"):
        load_config(
            ProductionConfig, environ={**SECRETS, "SECRET_KEY": shared, "JWT_SECRET_KEY": shared}
        )


@pytest.mark.parametrize(
    "value",
    ["", "not base64!", base64.b64encode(b"16 bytes only...").decode(), "A" * 44 + "="],
    ids=["missing", "not base64", "16 bytes", "bad padding"],
)
def test_production_refuses_a_key_encryption_key_that_is_not_32_bytes(value):
    with pytest.raises(ConfigError, match="^KEY_ENCRYPTION_KEY must be 32 random bytes in base64"):
        load_config(ProductionConfig, environ={**SECRETS, "KEY_ENCRYPTION_KEY": value})


def test_production_defaults_are_safe():
    settings = production()
    assert settings["JWT_COOKIE_SECURE"] is True
    assert settings["TESTING"] is False
    assert settings["ARGON2_MEMORY_COST"] >= 19 * 1024


# --- development secrets --------------------------------------------------------------


@pytest.fixture
def dev_secrets_file(tmp_path, monkeypatch) -> Path:
    """Where development keeps its generated secrets, private to the test."""
    path = tmp_path / "dev-secrets.json"
    monkeypatch.setattr(config, "DEV_SECRETS_FILE", path)
    return path


@pytest.mark.parametrize(
    "environ, key",
    [
        ({"SECRET_KEY": "a" * 32}, "SECRET_KEY"),
        ({"JWT_SECRET_KEY": "change-me-to-a-long-random-string-please"}, "JWT_SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"JWT_SECRET_KEY": PUBLISHED["FastAPI tutorial"]}, "JWT_SECRET_KEY"),
        ({"SECRET_KEY": hashlib.sha256(b"secret").hexdigest()}, "SECRET_KEY"),
        (
            {"SECRET_KEY": SECRETS["SECRET_KEY"], "JWT_SECRET_KEY": SECRETS["SECRET_KEY"]},
            "SECRET_KEY and JWT_SECRET_KEY must differ",
        ),
    ],
    ids=["repeat", "words", "short", "published", "hash-of-secret", "shared"],
)
def test_development_checks_the_secrets_it_is_given(dev_secrets_file, environ, key):
    """A weak secret in a development .env is refused like in production, in one line."""
    with pytest.raises(ConfigError) as refused:
        load_config(DevelopmentConfig, environ=environ)
    message = str(refused.value)
    assert message.startswith(key)
    assert "\n" not in message
    assert "Or leave it empty in development" in message


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SECRET_KEY": "", "JWT_SECRET_KEY": "", "KEY_ENCRYPTION_KEY": ""},
    ],
    ids=["nothing set", "set empty"],
)
def test_development_generates_the_missing_secrets(dev_secrets_file, environ):
    """make run on a fresh clone: the secrets generated, kept, and good enough for production."""
    settings = load_config(DevelopmentConfig, environ=environ)
    again = load_config(DevelopmentConfig, environ=environ)
    keys = ("SECRET_KEY", "JWT_SECRET_KEY", "KEY_ENCRYPTION_KEY")
    assert [again[key] for key in keys] == [settings[key] for key in keys]
    assert load_config(ProductionConfig, environ={key: settings[key] for key in keys})
    assert dev_secrets_file.exists()


def test_development_generates_only_the_missing_secret(dev_secrets_file):
    given = secrets.token_hex(16)
    environ = {"JWT_SECRET_KEY": given, "KEY_ENCRYPTION_KEY": SECRETS["KEY_ENCRYPTION_KEY"]}
    settings = load_config(DevelopmentConfig, environ=environ)
    assert settings["JWT_SECRET_KEY"] == given
    assert settings["SECRET_KEY"] not in ("", None, given)
    assert set(json.loads(dev_secrets_file.read_text())) == {"SECRET_KEY"}


def test_the_env_example_starts_in_development(dev_secrets_file):
    """cp .env.example .env && make run: what the example ships must not be refused."""
    example = dotenv_values(Path(__file__).resolve().parents[1] / ".env.example")
    environ = {key: value for key, value in example.items() if value is not None}
    assert environ["APP_ENV"] == "development"
    settings = load_config(DevelopmentConfig, environ=environ)
    assert settings["SECRET_KEY"] != settings["JWT_SECRET_KEY"]


# --- choosing the config class --------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        (None, ProductionConfig),
        ("production", ProductionConfig),
        ("DEVELOPMENT", DevelopmentConfig),
    ],
)
def test_app_env_selects_the_config_class(monkeypatch, name, expected):
    if name is None:
        monkeypatch.delenv("APP_ENV", raising=False)
    else:
        monkeypatch.setenv("APP_ENV", name)
    assert config_class_from_env() is expected


@pytest.mark.parametrize("name", ["staging", "prod", "", "testing", " Testing "])
def test_invalid_app_env_is_refused(monkeypatch, name):
    monkeypatch.setenv("APP_ENV", name)
    with pytest.raises(ConfigError, match="APP_ENV"):
        config_class_from_env()


@pytest.mark.parametrize("name", ["staging", "testing"])
def test_create_app_refuses_an_invalid_app_env(monkeypatch, name):
    monkeypatch.setenv("APP_ENV", name)
    with pytest.raises(ConfigError, match="APP_ENV"):
        create_app()


def test_the_testing_config_is_reserved_for_the_suite(monkeypatch):
    """Its cheap hashing is reachable only by passing the class to create_app."""
    monkeypatch.setenv("APP_ENV", "testing")
    with pytest.raises(ConfigError, match=r"testing is for the test suite alone"):
        config_class_from_env()


def test_testing_config_ignores_the_environment():
    hostile = {
        "JWT_ACCESS_TOKEN_EXPIRES": "1",
        "SECRET_KEY": "short",
        "DATABASE_URL": "postgres://elsewhere/db",
        "ARGON2_MEMORY_COST": "999999",
        "JWT_COOKIE_SECURE": "false",
    }
    assert load_config(TestingConfig, environ=hostile) == load_config(TestingConfig, environ={})


# --- OpenAPI document and docs pages --------------------------------------------------

API_PATHS = {
    "/auth/signup",
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/auth/logout-all",
    "/auth/me",
    "/auth/change-password",
    "/auth/token-info",
    "/auth/active-sessions",
    "/auth/active-sessions/{session_id}",
    "/users/me",
    "/users/",
    "/users/{user_id}/activate",
    "/users/{user_id}/deactivate",
    "/healthz",
    "/readyz",
}
PROTECTED = [
    ("/auth/logout", "post"),
    ("/auth/logout-all", "post"),
    ("/auth/me", "get"),
    ("/auth/change-password", "put"),
    ("/auth/active-sessions", "get"),
    ("/auth/active-sessions/{session_id}", "delete"),
    ("/users/me", "get"),
    ("/users/me", "patch"),
    ("/users/me", "delete"),
    ("/users/", "get"),
    ("/users/{user_id}/activate", "put"),
    ("/users/{user_id}/deactivate", "put"),
]
PUBLIC = [
    ("/auth/signup", "post"),
    ("/auth/login", "post"),
    ("/auth/token-info", "get"),
    ("/healthz", "get"),
    ("/readyz", "get"),
]


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


def test_openapi_lists_every_path(spec):
    assert API_PATHS <= set(spec["paths"])


def test_openapi_documents_every_route_of_the_app(app, spec):
    routes = {
        re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith(("api-docs.", "docs_assets."))
    }
    assert routes == set(spec["paths"])


@pytest.mark.parametrize("path, method", PROTECTED)
def test_protected_operations_declare_bearer_auth_and_401(spec, path, method):
    operation = spec["paths"][path][method]
    assert operation["security"] == [{"bearerAuth": []}]
    assert "401" in operation["responses"]


@pytest.mark.parametrize("path, method", PUBLIC)
def test_public_operations_declare_no_bearer_auth(spec, path, method):
    security = spec["paths"][path][method].get("security", [])
    assert {"bearerAuth": []} not in security


def test_bearer_scheme_is_declared(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_are_html(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"/openapi.json" in response.get_data()


# --- /auth/token-info -----------------------------------------------------------------


def test_token_info_reflects_the_defaults(client):
    body = client.get("/auth/token-info").json
    assert body["access_token"]["lifetime_seconds"] == 15 * 60
    assert body["refresh_token"]["lifetime_seconds"] == 7 * 24 * 3600
    assert body["rotation"]["reuse_grace_seconds"] == 2
    assert body["access_token"]["algorithm"] == "ES256"


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"JWT_ALGORITHM": "HS512"}, "^JWT_ALGORITHM must be one of ES256, EdDSA, RS256, HS256"),
        ({"JWT_ALGORITHM": "none"}, "^JWT_ALGORITHM must be one of"),
        ({"JWT_AUDIENCE": " , "}, "^JWT_AUDIENCE must name at least one audience"),
        ({"JWKS_REFRESH_SECONDS": "0"}, "^JWKS_REFRESH_SECONDS must be at least 1"),
    ],
)
def test_token_settings_are_checked_at_start(environ, message):
    with pytest.raises(ConfigError, match=message):
        production(**environ)


def test_the_issuer_defaults_to_the_public_base_url_then_to_the_old_name():
    assert production(PUBLIC_BASE_URL="https://auth.example.com")["JWT_ISSUER"] == (
        "https://auth.example.com"
    )
    assert production()["JWT_ISSUER"] == "auth_service"
    assert (
        production(JWT_ISSUER="https://id.example.com", PUBLIC_BASE_URL="https://a.example")[
            "JWT_ISSUER"
        ]
        == "https://id.example.com"
    )


@pytest.mark.parametrize(
    "key, value, section, field, expected",
    [
        ("JWT_ACCESS_TOKEN_EXPIRES", timedelta(seconds=60), "access_token", "lifetime_seconds", 60),
        (
            "JWT_REFRESH_TOKEN_EXPIRES",
            timedelta(days=1),
            "refresh_token",
            "lifetime_seconds",
            86400,
        ),
        ("REFRESH_REUSE_GRACE_SECONDS", 3, "rotation", "reuse_grace_seconds", 3),
    ],
)
def test_token_info_reflects_live_config(
    app, client, monkeypatch, key, value, section, field, expected
):
    monkeypatch.setitem(app.config, key, value)
    assert client.get("/auth/token-info").json[section][field] == expected


def test_token_info_cookie_reflects_live_config(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "JWT_COOKIE_SECURE", False)
    monkeypatch.setitem(app.config, "JWT_COOKIE_SAMESITE", "Strict")
    cookie = client.get("/auth/token-info").json["refresh_token"]["cookie"]
    assert (cookie["secure"], cookie["samesite"], cookie["http_only"]) == (False, "Strict", True)


# --- docs/configuration.md, generated from config.py ----------------------------------


def test_configuration_page_is_current():
    """docs/configuration.md is what make docs writes from config.py today."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == configuration_generator().render(), (
        "docs/configuration.md is out of date: run make docs"
    )


def configuration_row(key: str) -> list[str]:
    page = (ROOT / "docs" / "configuration.md").read_text()
    row = re.search(rf"^\| `{key}` \|(.*)\|$", page, re.MULTILINE)
    assert row, f"{key} has no row in docs/configuration.md"
    return [cell.strip() for cell in row.group(1).split(" | ")]


@pytest.mark.parametrize("key", sorted(k for k in dir(ProductionConfig) if k.isupper()))
def test_every_setting_is_documented(key):
    """docs/configuration.md describes every setting, and .env.example names it."""
    description = configuration_row(key)[-1]
    assert len(description) > 10
    assert re.search(rf"^#?\s*{key}=", (ROOT / ".env.example").read_text(), re.MULTILINE)


@pytest.mark.parametrize(
    "key, default, development, testing",
    [
        ("JWT_ACCESS_TOKEN_EXPIRES", "`900`", "", ""),
        ("JWT_COOKIE_SECURE", "`true`", "`false`", ""),
        ("ARGON2_MEMORY_COST", "`19456`", "", "`8`"),
        ("CORS_ORIGINS", "empty", "", ""),
        ("PUBLIC_BASE_URL", "unset", "`http://127.0.0.1:8000`", "`https://auth.example.test`"),
        ("SECRET_KEY", "unset", "", "random per run"),
        (
            "DATABASE_URL",
            "`sqlite:///instance/auth_service.db`",
            "",
            "`sqlite:///instance/test.db`",
        ),
        ("OAUTH_HTTP_TIMEOUT", "`10`", "", ""),
    ],
)
def test_configuration_page_spells_values_as_the_environment_would(
    key, default, development, testing
):
    assert configuration_row(key)[:3] == [default, development, testing]


def test_configuration_page_lists_the_other_variables_config_reads():
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert configuration_generator().read_config().environ_reads == {
        "APP_ENV",
        "PORT",
        "TEST_DATABASE_URL",
    }
    for key in ("PORT", "TEST_DATABASE_URL"):
        assert re.search(rf"^\| `{key}` \| `[^`]+` \| .{{20,}} \|$", page, re.MULTILINE)


def test_the_generator_follows_config_py(tmp_path):
    """A changed default or description changes the page; an undocumented setting or
    environment variable stops the generator."""
    source = (ROOT / "config.py").read_text()
    changed = tmp_path / "config.py"
    changed.write_text(
        source.replace("MAIL_PORT = 25", "MAIL_PORT = 2525").replace(
            "#: SMTP server port.", "#: The SMTP port."
        )
    )
    page = configuration_generator().render(changed)
    assert "| `MAIL_PORT` | `2525` |  |  | The SMTP port. |" in page
    changed.write_text(source.replace("    #: SMTP server port.\n", ""))
    with pytest.raises(SystemExit, match="no #: description for MAIL_PORT"):
        configuration_generator().render(changed)
    changed.write_text(source + '\nEXTRA = os.environ.get("AUTH_EXTRA")\n')
    with pytest.raises(SystemExit, match="no #: description for AUTH_EXTRA"):
        configuration_generator().render(changed)


def test_make_docs_check_fails_on_a_stale_page(tmp_path, monkeypatch):
    module = configuration_generator()
    stale = tmp_path / "configuration.md"
    stale.write_text(module.render().replace("`65536`", "`1`"))
    monkeypatch.setattr(module, "PAGE", stale)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0
