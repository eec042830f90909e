"""A superuser's administration of other accounts: /users/{id} and POST /users/."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from audit_helpers import Trail
from auth_service.extensions import db
from auth_service.persistence.models import User
from helpers import assert_error, bearer, claims, stored_user
from helpers import user_columns as row

RACE_TRIES = 5


@pytest.fixture
def trail(in_db):
    return Trail(in_db)


@pytest.fixture
def alice_id(alice_tokens):
    return int(claims(alice_tokens["access_token"])["sub"])


def subject(headers) -> int:
    return int(claims(headers["Authorization"].split()[1])["sub"])


def active_superusers(in_db) -> int:
    return in_db(
        lambda: db.session.scalar(
            sa.select(sa.func.count()).where(User.is_superuser, User.is_active)
        )
    )


# --- GET /users/{id} ------------------------------------------------------------------


def test_get_user_as_superuser(client, superuser_headers, alice_id):
    response = client.get(f"/users/{alice_id}", headers=superuser_headers)
    assert response.status_code == 200
    assert response.json["email"] == "alice@example.com"
    assert response.json["id"] == alice_id
    assert "password_hash" not in response.json


@pytest.mark.parametrize("user_id", [999999, 2**40])
def test_get_unknown_user_is_404(client, superuser_headers, user_id):
    assert_error(client.get(f"/users/{user_id}", headers=superuser_headers), 404, "user_not_found")


@pytest.mark.parametrize("method", ["get", "patch"])
def test_user_admin_refuses_ordinary_users(client, alice_headers, alice_id, method):
    response = getattr(client, method)(
        f"/users/{alice_id}", headers=alice_headers, json={"full_name": "x"}
    )
    assert_error(response, 403)


# --- PATCH /users/{id} ----------------------------------------------------------------


def test_patch_user_changes_profile_and_flags(client, superuser_headers, alice_id, in_db):
    changes = {
        "full_name": "Alice Liddell",
        "username": "alice_l",
        "is_superuser": True,
        "email_verified": True,
    }
    response = client.patch(f"/users/{alice_id}", json=changes, headers=superuser_headers)
    assert response.status_code == 200, response.json
    for key, value in changes.items():
        assert response.json[key] == value
    after = row(in_db)
    assert (after["full_name"], after["username"], after["is_superuser"]) == (
        "Alice Liddell",
        "alice_l",
        True,
    )
    assert after["email_verified"] is not None

    response = client.patch(
        f"/users/{alice_id}", json={"email_verified": False}, headers=superuser_headers
    )
    assert response.status_code == 200
    assert response.json["email_verified"] is False
    assert row(in_db)["email_verified"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"is_superuser": "yes"},
        {"email_verified": 1},
        {"username": "x"},
        {"email": "new@example.com"},
        {"is_active": False},
    ],
)
def test_patch_user_rejects_invalid_values_and_changes_nothing(
    client, superuser_headers, alice_id, in_db, changes
):
    before = row(in_db)
    response = client.patch(f"/users/{alice_id}", json=changes, headers=superuser_headers)
    assert_error(response, 422, "validation_error")
    assert row(in_db) == before


def test_patch_user_username_taken(client, superuser_headers, alice_id, in_db):
    response = client.patch(
        f"/users/{alice_id}", json={"username": "ROOT"}, headers=superuser_headers
    )
    assert_error(response, 409, "username_taken")
    assert row(in_db)["username"] == "alice"


def test_promotion_and_demotion_are_audited_with_the_actor(
    client, trail, superuser_headers, alice_id
):
    root = subject(superuser_headers)
    path = f"/users/{alice_id}"
    promoted = trail.call(
        client.patch, path, json={"is_superuser": True}, headers=superuser_headers
    )
    assert promoted.status_code == 200
    trail.only("superuser_granted", alice_id, actor_id=root)
    again = trail.call(client.patch, path, json={"is_superuser": True}, headers=superuser_headers)
    assert again.status_code == 200
    assert trail.recorded() == []  # no change, no event
    demoted = trail.call(
        client.patch, path, json={"is_superuser": False}, headers=superuser_headers
    )
    assert demoted.status_code == 200
    assert demoted.json["is_superuser"] is False
    trail.only("superuser_revoked", alice_id, actor_id=root)


def test_the_last_active_superuser_cannot_be_demoted(client, trail, superuser_headers, in_db):
    root = subject(superuser_headers)
    response = trail.call(
        client.patch, f"/users/{root}", json={"is_superuser": False}, headers=superuser_headers
    )
    assert_error(response, 409, "last_superuser")
    assert stored_user(in_db, "root@example.com").is_superuser
    assert trail.recorded() == []


def test_a_superuser_may_demote_itself_when_another_remains(
    client, auth, superuser_headers, make_superuser, in_db
):
    auth.signup("admin@example.com", "admin")
    make_superuser("admin@example.com")
    root = subject(superuser_headers)
    response = client.patch(
        f"/users/{root}", json={"is_superuser": False}, headers=superuser_headers
    )
    assert response.status_code == 200
    assert active_superusers(in_db) == 1


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_two_superusers_demoting_each_other_leave_one(app, auth, make_superuser, in_db, attempt):
    admins = []
    for name in ("root", "admin"):
        admins.append(auth.signup_and_login(f"{name}@example.com", name))
        make_superuser(f"{name}@example.com")
    ids = [stored_user(in_db, f"{name}@example.com").id for name in ("root", "admin")]
    start = threading.Barrier(2)

    def demote_the_other(index):
        start.wait(timeout=30)
        return app.test_client().patch(
            f"/users/{ids[1 - index]}",
            json={"is_superuser": False},
            headers=bearer(admins[index]["access_token"]),
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(demote_the_other, range(2)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([200, 403], [200, 409]), [r.json for r in responses]
    assert active_superusers(in_db) == 1
