"""Mass assignment: privileged or internal fields in a request body are refused (422,
"Unknown field.") and the database row reads back unchanged."""

from __future__ import annotations

import pytest

from auth_service.persistence.models import RefreshToken, User
from helpers import PASSWORD, bearer, login, row_count, token_rows, user_columns

FOREIGN_HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$Wm9yZ2VkaGFzaGZvcmdlZGhhc2g"
# Fields a client must never set, with a value an attacker would send.
PRIVILEGED = [
    ("is_superuser", True),
    ("is_active", False),
    ("id", 42),
    ("email_verified", True),
    ("email_verified_at", "2030-01-01T00:00:00+00:00"),
    ("token_version", 7),
    ("password_hash", FOREIGN_HASH),
    ("has_password", False),
    ("password_changed_at", "2000-01-01T00:00:00+00:00"),
]
SIGNUP = {
    "email": "mallory@example.com",
    "username": "mallory",
    "password": PASSWORD,
    "full_name": "Mallory",
}
NEW_PASSWORD = "a completely new passphrase"


@pytest.mark.parametrize(("field", "value"), PRIVILEGED, ids=[f for f, _ in PRIVILEGED])
def test_signup_with_a_privileged_field_creates_nothing(client, in_db, field, value):
    response = client.post("/auth/signup", json={**SIGNUP, field: value})

    assert response.status_code == 422
    assert response.json["errors"]["json"] == {field: ["Unknown field."]}
    assert row_count(in_db, User) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [*PRIVILEGED, ("email", "mallory@example.com"), ("password", NEW_PASSWORD)],
    ids=[f for f, _ in PRIVILEGED] + ["email", "password"],
)
def test_profile_update_with_a_privileged_field_changes_nothing(
    client, alice_headers, in_db, field, value
):
    before = user_columns(in_db)

    response = client.patch(
        "/users/me", json={"full_name": "Alice Liddell", field: value}, headers=alice_headers
    )

    assert response.status_code == 422
    assert response.json["errors"]["json"] == {field: ["Unknown field."]}
    assert user_columns(in_db) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [*PRIVILEGED, ("email", "mallory@example.com")],
    ids=[f for f, _ in PRIVILEGED] + ["email"],
)
def test_password_change_with_a_privileged_field_changes_nothing(
    client, alice_tokens, in_db, field, value
):
    before = user_columns(in_db)
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, field: value}

    response = client.put(
        "/auth/change-password", json=body, headers=bearer(alice_tokens["access_token"])
    )

    assert response.status_code == 422
    assert response.json["errors"]["json"] == {field: ["Unknown field."]}
    assert user_columns(in_db) == before
    assert row_count(in_db, RefreshToken) == 1
    assert [row.revoked_at for row in token_rows(in_db)] == [None]
    assert login(client).status_code == 200
