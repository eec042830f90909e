"""Signup validation, password storage and the login's uniform failure."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, Type

from auth_service.extensions import db
from auth_service.persistence.models import User
from auth_service.services.accounts import find_by_email
from helpers import PASSWORD, row_count, stored_user

USER_FIELDS = {
    "id",
    "email",
    "username",
    "full_name",
    "is_active",
    "is_superuser",
    "has_password",
    "mfa_enabled",
    "email_verified",
    "email_verified_at",
    "avatar_url",
    "created_at",
    "updated_at",
}
VALID = {
    "email": "alice@example.com",
    "username": "alice",
    "password": PASSWORD,
    "full_name": "Alice Example",
}
INVALID_LOGIN = {
    "code": 401,
    "status": "Unauthorized",
    "error": "invalid_credentials",
    "message": "Invalid email or password.",
}


def signup(client, **changes):
    """POST /auth/signup with VALID plus ``changes`` (a value of ... leaves the field out)."""
    body = {**VALID, **changes}
    return client.post("/auth/signup", json={k: v for k, v in body.items() if v is not ...})


# --- signup ---------------------------------------------------------------------------


def test_signup_returns_the_public_profile_only(client):
    response = signup(client)
    assert response.status_code == 201
    assert set(response.json) == USER_FIELDS
    assert response.json["email"] == "alice@example.com"
    assert response.json["username"] == "alice"
    assert response.json["full_name"] == "Alice Example"
    assert response.json["is_active"] is True
    assert response.json["is_superuser"] is False
    assert response.json["has_password"] is True
    assert response.json["mfa_enabled"] is False
    assert response.json["email_verified"] is False
    assert response.json["email_verified_at"] is None
    assert PASSWORD not in response.get_data(as_text=True)


def test_signup_stores_an_argon2id_hash(client, in_db):
    assert signup(client).status_code == 201
    stored = stored_user(in_db).password_hash
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, PASSWORD)


def test_signup_trims_and_lower_cases_the_email(client, in_db):
    response = signup(client, email="  Alice@Example.COM ")
    assert response.status_code == 201
    assert response.json["email"] == "alice@example.com"
    assert stored_user(in_db).email == "alice@example.com"


def test_signup_email_is_unique_ignoring_case(client, in_db):
    assert signup(client).status_code == 201
    response = signup(client, email="ALICE@example.com", username="other")
    assert response.status_code == 409
    assert response.json["error"] == "email_taken"
    assert row_count(in_db, User) == 1


def test_signup_username_is_unique_ignoring_case(client, in_db):
    assert signup(client).status_code == 201
    response = signup(client, email="other@example.com", username="ALICE")
    assert response.status_code == 409
    assert response.json["error"] == "username_taken"
    assert row_count(in_db, User) == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("password", "kT8#vq2Z"),  # 8 characters, not guessable
        ("password", "kT8#vq2Z" * 16),  # 128
        ("username", "abc"),
        ("username", "a" * 50),
        ("username", "a_b.c-D9"),
        ("full_name", "n" * 100),
        ("full_name", None),
        ("full_name", ...),
    ],
)
def test_signup_accepts_values_at_the_limits(client, field, value):
    assert signup(client, **{field: value}).status_code == 201


@pytest.mark.parametrize(
    "field, value",
    [
        ("email", "not-an-email"),
        ("email", "alice@"),
        ("email", "@example.com"),
        ("email", ""),
        ("email", "a" * 250 + "@example.com"),
        ("username", "ab"),
        ("username", "a" * 51),
        ("username", "al ice"),
        ("username", "al@ice"),
        ("username", "ålice"),
        ("username", ""),
        ("full_name", "n" * 101),
        ("password", "x" * 7),
        ("password", "x" * 129),
        ("password", ""),
    ],
)
def test_signup_rejects_invalid_values(client, in_db, field, value):
    response = signup(client, **{field: value})
    assert response.status_code == 422
    assert response.json["error"] == "validation_error"
    assert list(response.json["errors"]["json"]) == [field]
    assert all(isinstance(m, str) for m in response.json["errors"]["json"][field])
    assert row_count(in_db, User) == 0


@pytest.mark.parametrize("field", ["email", "username", "password"])
def test_signup_requires_field(client, in_db, field):
    response = signup(client, **{field: ...})
    assert response.status_code == 422
    assert response.json["errors"]["json"] == {field: ["Missing data for required field."]}
    assert row_count(in_db, User) == 0


WRONG_TYPES = {"number": 12345, "list": ["alice"], "null": None, "object": {"a": 1}, "bool": True}


@pytest.mark.parametrize(
    "field, value",
    [
        pytest.param(field, value, id=f"{field}-{kind}")
        for field in ("email", "username", "password", "full_name")
        for kind, value in WRONG_TYPES.items()
        if not (field == "full_name" and value is None)  # full_name is nullable
    ],
)
def test_signup_rejects_wrong_json_types(client, in_db, field, value):
    response = signup(client, **{field: value})
    assert response.status_code == 422
    assert list(response.json["errors"]["json"]) == [field]
    assert row_count(in_db, User) == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("email", "ali\x00ce@example.com"),
        ("username", "ali\x00ce"),
        ("password", "correct\x00horse battery"),
        ("full_name", "Alice\x00Example"),
    ],
)
def test_signup_rejects_nul_bytes(client, in_db, field, value):
    response = signup(client, **{field: value})
    assert response.status_code == 422
    assert list(response.json["errors"]["json"]) == [field]
    assert row_count(in_db, User) == 0


# Privileged fields in a signup body (is_superuser, ...): tests/security/test_mass_assignment.py


# --- login ----------------------------------------------------------------------------


class VerifySpy:
    """Wraps the app's PasswordHasher and counts ``verify`` calls."""

    def __init__(self, inner: PasswordHasher):
        self.inner = inner
        self.verify_calls = 0

    def verify(self, password_hash, password):
        self.verify_calls += 1
        return self.inner.verify(password_hash, password)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def verify_spy(app, monkeypatch):
    spy = VerifySpy(app.extensions["password_hasher"])
    monkeypatch.setitem(app.extensions, "password_hasher", spy)
    return spy


def _deactivated(auth, in_db):
    auth.signup()

    def run():
        find_by_email("alice@example.com").is_active = False
        db.session.commit()

    in_db(run)
    return {"email": "alice@example.com", "password": PASSWORD}


def _passwordless(auth, in_db):
    def run():
        db.session.add(User(email="alice@example.com", username="alice", password_hash=None))
        db.session.commit()

    in_db(run)
    return {"email": "alice@example.com", "password": PASSWORD}


def _unknown_email(auth, in_db):
    auth.signup()
    return {"email": "nobody@example.com", "password": PASSWORD}


def _wrong_password(auth, in_db):
    auth.signup()
    return {"email": "alice@example.com", "password": "not the password"}


@pytest.mark.parametrize(
    "scenario",
    [_unknown_email, _wrong_password, _deactivated, _passwordless],
    ids=["unknown_email", "wrong_password", "deactivated", "passwordless"],
)
def test_failed_logins_are_indistinguishable(client, auth, in_db, verify_spy, scenario):
    credentials = scenario(auth, in_db)
    verify_spy.verify_calls = 0
    response = client.post("/auth/login", json=credentials)
    assert response.status_code == 401
    assert response.json == INVALID_LOGIN
    assert "Set-Cookie" not in response.headers
    # Exactly one argon2 verification whatever the reason: no timing oracle.
    assert verify_spy.verify_calls == 1


def test_failed_logins_send_identical_headers(app, client, auth, in_db):
    headers = []
    for scenario in (_unknown_email, _wrong_password, _deactivated, _passwordless):
        with app.app_context():
            db.session.execute(sa.delete(User))
            db.session.commit()
        response = client.post("/auth/login", json=scenario(auth, in_db))
        # Date and the request id differ on every response, whoever asks.
        headers.append(
            sorted((k, v) for k, v in response.headers.items() if k not in ("Date", "X-Request-ID"))
        )
    assert all(h == headers[0] for h in headers)
    assert dict(headers[0])["WWW-Authenticate"].startswith('Bearer realm="auth_service"')


def test_successful_login_also_costs_one_verification(client, auth, verify_spy):
    auth.signup()
    verify_spy.verify_calls = 0
    assert auth.login().status_code == 200
    assert verify_spy.verify_calls == 1


def test_login_email_ignores_case_and_spaces(client, auth):
    auth.signup()
    assert auth.login(email="  ALICE@example.com ").status_code == 200


def test_login_does_not_rehash_with_unchanged_parameters(client, auth, in_db):
    auth.signup()
    before = stored_user(in_db).password_hash
    assert auth.login().status_code == 200
    assert stored_user(in_db).password_hash == before


def test_login_rehashes_when_parameters_changed(app, client, auth, in_db, monkeypatch):
    auth.signup()
    before = stored_user(in_db).password_hash
    assert before.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, type=Type.ID)
    monkeypatch.setitem(app.extensions, "password_hasher", stronger)

    assert auth.login().status_code == 200

    after = stored_user(in_db).password_hash
    assert after.startswith("$argon2id$v=19$m=16,t=2,p=1$")
    assert stronger.verify(after, PASSWORD)
    assert not stronger.check_needs_rehash(after)
