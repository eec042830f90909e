"""Guessable passwords (zxcvbn, PASSWORD_MIN_STRENGTH) are refused wherever a password
is set: signup, change-password and the CLI. The account's own email, username and
name count as known words."""

from __future__ import annotations

import pytest

from auth_service.persistence.models import User
from helpers import PASSWORD, bearer, login, row_count, stored_user, user_columns

ACCOUNT = {"email": "alice@example.com", "username": "alicewonder", "full_name": "Alice Example"}
# Each scores 0; the account-derived ones only because the account is known
# (without it "alice@example.com" scores 4, "alicewonder" 1, "Alice Example" 3).
GUESSABLE = {
    "common": "password123",
    "keyboard": "qwertyuiop",
    "digits": "12345678",
    "own-email": "alice@example.com",
    "own-username": "alicewonder",
    "own-name": "Alice Example",
}
WALKTHROUGH_PASSWORD = "Password123"


def assert_too_guessable(response, field: str) -> None:
    assert response.status_code == 422
    assert response.json["error"] == "validation_error"
    messages = response.json["errors"]["json"]
    assert list(messages) == [field]
    assert all(m.startswith("This password is too easy to guess") for m in messages[field])


@pytest.fixture
def alice(client):
    """Alice signed up with a username long enough to be a password."""
    response = client.post("/auth/signup", json={**ACCOUNT, "password": PASSWORD})
    assert response.status_code == 201
    return login(client).json


# --- signup ---------------------------------------------------------------------------


@pytest.mark.parametrize("password", GUESSABLE.values(), ids=GUESSABLE.keys())
def test_signup_refuses_a_guessable_password(client, in_db, password):
    response = client.post("/auth/signup", json={**ACCOUNT, "password": password})

    assert_too_guessable(response, "password")
    assert row_count(in_db, User) == 0


def test_signup_accepts_the_walkthrough_password(client, in_db):
    response = client.post("/auth/signup", json={**ACCOUNT, "password": WALKTHROUGH_PASSWORD})

    assert response.status_code == 201
    assert login(client, password=WALKTHROUGH_PASSWORD).status_code == 200


def test_min_strength_zero_switches_the_check_off(app, client, in_db, monkeypatch):
    monkeypatch.setitem(app.config, "PASSWORD_MIN_STRENGTH", 0)

    response = client.post("/auth/signup", json={**ACCOUNT, "password": "password123"})

    assert response.status_code == 201
    assert stored_user(in_db).has_password


# --- change-password ------------------------------------------------------------------


@pytest.mark.parametrize("password", GUESSABLE.values(), ids=GUESSABLE.keys())
def test_change_password_refuses_a_guessable_password(client, in_db, alice, password):
    before = user_columns(in_db)

    response = client.put(
        "/auth/change-password",
        headers=bearer(alice["access_token"]),
        json={"current_password": PASSWORD, "new_password": password},
    )

    assert_too_guessable(response, "new_password")
    assert user_columns(in_db) == before
    assert login(client).status_code == 200


def test_change_password_accepts_the_walkthrough_password(client, alice):
    response = client.put(
        "/auth/change-password",
        headers=bearer(alice["access_token"]),
        json={"current_password": PASSWORD, "new_password": WALKTHROUGH_PASSWORD},
    )

    assert response.status_code == 200
    assert login(client, password=WALKTHROUGH_PASSWORD).status_code == 200


# --- CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize("password", GUESSABLE.values(), ids=GUESSABLE.keys())
def test_cli_set_password_refuses_a_guessable_password(runner, in_db, alice, password):
    before = stored_user(in_db).password_hash

    result = runner.invoke(
        args=["users", "set-password", "alice@example.com", "--password", password]
    )

    assert result.exit_code == 2
    assert "password: This password is too easy to guess" in result.output
    assert stored_user(in_db).password_hash == before


@pytest.mark.parametrize("password", GUESSABLE.values(), ids=GUESSABLE.keys())
def test_cli_create_superuser_refuses_a_guessable_password(runner, in_db, password):
    result = runner.invoke(
        args=[
            "users",
            "create-superuser",
            "--email",
            ACCOUNT["email"],
            "--username",
            ACCOUNT["username"],
            "--full-name",
            ACCOUNT["full_name"],
            "--password",
            password,
        ]
    )

    assert result.exit_code == 2
    assert "password: This password is too easy to guess" in result.output
    assert row_count(in_db, User) == 0
