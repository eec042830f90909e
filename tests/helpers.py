"""Plain helper functions and constants shared by the tests; fixtures live in conftest.py."""

from __future__ import annotations

import base64
import importlib.util
import os
import secrets
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from auth_service.extensions import db
from auth_service.persistence.models import RefreshToken, User, utcnow
from auth_service.services.accounts import find_by_email

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PASSWORD = "correct horse battery"  # what the conftest auth helper signs up and logs in with
WRONG_PASSWORD = "not the password"
LOGIN_TIME = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)  # a fixed instant for freeze_time
ERROR_KEYS = {"code", "status", "error", "message"}  # every JSON error body has these
# Secrets production accepts (config.check_secret), new for every run.
PRODUCTION_SECRETS = {
    "SECRET_KEY": secrets.token_urlsafe(48),
    "JWT_SECRET_KEY": secrets.token_urlsafe(48),
    "KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
}


def unavailable(reason: str, remedy: str) -> None:
    """Skip a test whose tool or service is missing here; with CI set, fail instead, so CI
    can never pass by skipping. ``remedy`` says how to provide it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it ({remedy})", pytrace=False)
    pytest.skip(reason)


# --- responses ------------------------------------------------------------------------


def docs_script(name: str):
    """docs/<name>.py as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configuration_generator():
    """docs/generate_configuration.py as a module."""
    return docs_script("generate_configuration")


def assert_error(response, status: int, error: str | None = None) -> dict:
    """The response is the shared error shape for ``status``; returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.json
    assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"errors"}
    assert body["code"] == status
    assert body["status"] == HTTPStatus(status).phrase
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    if error is not None:
        assert body["error"] == error
    return body


def assert_rate_limited(response, window_seconds: int = 60) -> dict:
    """A 429 in the shared shape whose Retry-After points inside the limit's window."""
    body = assert_error(response, 429, "rate_limited")
    assert set(body) == ERROR_KEYS
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds + 1
    return body


# --- tokens, headers and cookies ------------------------------------------------------


def claims(token: str) -> dict:
    """The payload of a JWT, signature not checked (the server is what checks it)."""
    return jwt.decode(token, options={"verify_signature": False})


def bearer(token: str) -> dict:
    """The Authorization header that presents ``token``."""
    return {"Authorization": f"Bearer {token}"}


def csrf_header(client) -> dict:
    """The X-CSRF-TOKEN header a browser sends, read from the client's csrf cookie."""
    return {"X-CSRF-TOKEN": client.get_cookie("csrf_refresh_token").value}


def set_cookies(response) -> dict[str, dict]:
    """The response's Set-Cookie headers by name: {"value": ..., "path": "/auth", "httponly": True}."""
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        pair, *attributes = header.split("; ")
        name, _, value = pair.partition("=")
        cookie = {"value": value}
        for attribute in attributes:
            key, has_value, attr_value = attribute.partition("=")
            cookie[key.lower()] = attr_value if has_value else True
        cookies[name] = cookie
    return cookies


# --- requests -------------------------------------------------------------------------


def me(client, access_token: str):
    """GET /auth/me with ``access_token``."""
    return client.get("/auth/me", headers=bearer(access_token))


def refresh(client, token: str):
    """POST /auth/refresh with ``token`` in the JSON body."""
    return client.post("/auth/refresh", json={"refresh_token": token})


def login(client, email="alice@example.com", password=PASSWORD, **kwargs):
    """POST /auth/login with these credentials."""
    return client.post("/auth/login", json={"email": email, "password": password}, **kwargs)


def client_from(app, ip: str):
    """A test client whose requests come from the socket address ``ip``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


# --- database rows --------------------------------------------------------------------


def row_count(in_db, model) -> int:
    """How many rows ``model``'s table holds."""
    return in_db(lambda: db.session.scalar(sa.select(sa.func.count()).select_from(model)))


def mark_email_verified(in_db, email="alice@example.com") -> None:
    """Set the account's email_verified, as following a verification link would."""

    def run():
        find_by_email(email).email_verified = utcnow()
        db.session.commit()

    in_db(run)


def stored_user(in_db, email="alice@example.com") -> User | None:
    """The row for ``email`` (detached, attributes loaded), or None."""

    def run():
        user = find_by_email(email)
        if user is not None:
            db.session.expunge(user)
        return user

    return in_db(run)


def user_columns(in_db, email="alice@example.com") -> dict | None:
    """Every column of the user's row as a dict, or None when there is no such row."""
    user = stored_user(in_db, email)
    if user is None:
        return None
    return {c.key: getattr(user, c.key) for c in sa.inspect(User).column_attrs}


def token_rows(in_db, user_id=None) -> list[RefreshToken]:
    """The refresh_tokens rows, oldest first (detached), of ``user_id`` or of everyone."""

    def run():
        query = sa.select(RefreshToken).order_by(RefreshToken.created_at)
        if user_id is not None:
            query = query.where(RefreshToken.user_id == user_id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows

    return in_db(run)


def family_rows(in_db, token: str) -> list[RefreshToken]:
    """Every refresh_tokens row of the session of ``token`` (access or refresh)."""
    sid = claims(token)["sid"]
    return in_db(
        lambda: db.session.scalars(
            sa.select(RefreshToken).where(RefreshToken.family_id == sid)
        ).all()
    )


# --- metrics --------------------------------------------------------------------------


def parse_metrics(text: str) -> dict:
    """{(sample name, sorted labels): value} of a /metrics scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_value(samples: dict, name: str, **labels) -> float:
    """The value of sample ``name`` with exactly ``labels`` in ``parse_metrics``' result."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- signing keys ---------------------------------------------------------------------


def current_key(app):
    """The key ``app`` signs with now (security.signing_keys.Key: kid, algorithm, signing)."""
    from auth_service.security import signing_keys

    with app.app_context():
        return signing_keys.keyring().current


def sign_segments(header_segment: str, payload_segment: str, private_key, algorithm="ES256"):
    """A token of these two segments, whatever they say, with a valid signature."""
    from jwt.algorithms import get_default_algorithms

    signing_input = f"{header_segment}.{payload_segment}".encode()
    signature = get_default_algorithms()[algorithm].sign(signing_input, private_key)
    return f"{header_segment}.{payload_segment}.{b64url(signature)}"


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
