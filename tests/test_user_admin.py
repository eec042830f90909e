"""A superuser's administration of other accounts: /users/{id} and POST /users/."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from audit_helpers import Trail
from auth_service.extensions import db
from auth_service.persistence.models import User
from helpers import assert_error, bearer, claims, me, refresh, stored_user, token_rows
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
    admins = two_superusers(auth, make_superuser, in_db)

    responses = each_acting_on_the_other(
        app, admins, "patch", "/users/{id}", json={"is_superuser": False}
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([200, 403], [200, 409]), [r.json for r in responses]
    assert active_superusers(in_db) == 1


# --- DELETE /users/{id}, /users/{id}/sessions -----------------------------------------


def test_delete_user_removes_it_and_its_tokens(
    client, trail, superuser_headers, alice_tokens, alice_id, in_db
):
    response = trail.call(client.delete, f"/users/{alice_id}", headers=superuser_headers)
    assert response.status_code == 204
    assert stored_user(in_db) is None
    assert token_rows(in_db, alice_id) == []
    assert me(client, alice_tokens["access_token"]).status_code == 401
    trail.only("account_deleted", alice_id, actor_id=subject(superuser_headers))


def test_delete_unknown_user_is_404(client, superuser_headers):
    assert_error(client.delete("/users/999999", headers=superuser_headers), 404, "user_not_found")


def test_a_superuser_deletes_itself_only_through_users_me(client, superuser_headers, in_db):
    root = subject(superuser_headers)
    response = client.delete(f"/users/{root}", headers=superuser_headers)
    assert_error(response, 409, "cannot_delete_self")
    assert stored_user(in_db, "root@example.com") is not None


def two_superusers(auth, make_superuser, in_db):
    """Logged-in root and admin, both superusers: (their tokens, their ids)."""
    admins = []
    for name in ("root", "admin"):
        admins.append(auth.signup_and_login(f"{name}@example.com", name))
        make_superuser(f"{name}@example.com")
    return admins, [stored_user(in_db, f"{name}@example.com").id for name in ("root", "admin")]


def each_acting_on_the_other(app, admins, method, path, **kwargs):
    """Both superusers send ``method path.format(id=<the other's id>)`` at once."""
    tokens, ids = admins
    start = threading.Barrier(2)

    def act(index):
        start.wait(timeout=30)
        return getattr(app.test_client(), method)(
            path.format(id=ids[1 - index]), headers=bearer(tokens[index]["access_token"]), **kwargs
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(act, range(2)))


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_two_superusers_deleting_each_other_leave_one(app, auth, make_superuser, in_db, attempt):
    admins = two_superusers(auth, make_superuser, in_db)

    responses = each_acting_on_the_other(app, admins, "delete", "/users/{id}")

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([204, 401], [204, 409]), [r.json for r in responses]
    assert active_superusers(in_db) == 1


@pytest.mark.parametrize("method", ["delete", "get"])
def test_session_admin_refuses_ordinary_users(client, alice_headers, alice_id, method):
    assert_error(getattr(client, method)(f"/users/{alice_id}/sessions", headers=alice_headers), 403)


def test_list_and_revoke_a_users_sessions(
    client, trail, auth, superuser_headers, alice_tokens, alice_id, in_db
):
    auth.login()
    listed = client.get(f"/users/{alice_id}/sessions", headers=superuser_headers)
    assert listed.status_code == 200
    assert len(listed.json) == 2
    assert {"id", "created_at", "last_used_at", "expires_at"} <= set(listed.json[0])

    revoked = trail.call(client.delete, f"/users/{alice_id}/sessions", headers=superuser_headers)
    assert revoked.status_code == 200
    assert revoked.json["message"] == "2 session(s) revoked."
    trail.only("logout_all", alice_id, actor_id=subject(superuser_headers), details={"sessions": 2})
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401
    assert me(client, alice_tokens["access_token"]).status_code == 401
    assert client.get(f"/users/{alice_id}/sessions", headers=superuser_headers).json == []
    assert all(t.revoked_reason == "revoked_by_admin" for t in token_rows(in_db, alice_id))


@pytest.mark.parametrize("method", ["delete", "get"])
def test_sessions_of_unknown_user_is_404(client, superuser_headers, method):
    response = getattr(client, method)("/users/999999/sessions", headers=superuser_headers)
    assert_error(response, 404, "user_not_found")


# --- POST /users/ ---------------------------------------------------------------------

NEW_USER = {"email": "Bob@Example.com", "username": "bob", "password": "bob's long passphrase 9"}


def test_create_user_with_a_password(client, trail, auth, superuser_headers, in_db):
    response = trail.call(client.post, "/users/", json=NEW_USER, headers=superuser_headers)
    assert response.status_code == 201, response.json
    assert response.json["email"] == "bob@example.com"
    assert (response.json["is_superuser"], response.json["email_verified"]) == (False, False)
    trail.only(
        "signup",
        response.json["id"],
        actor_id=subject(superuser_headers),
        details={"method": "password"},
    )
    assert auth.login("bob@example.com", NEW_USER["password"]).status_code == 200


def test_create_a_verified_superuser(client, trail, superuser_headers, in_db):
    body = {**NEW_USER, "is_superuser": True, "email_verified": True, "full_name": "Bob"}
    response = trail.call(client.post, "/users", json=body, headers=superuser_headers)
    assert response.status_code == 201, response.json
    assert (response.json["is_superuser"], response.json["email_verified"]) == (True, True)
    assert [e.type for e in trail.recorded()] == ["signup", "superuser_granted", "email_verified"]
    root = subject(superuser_headers)
    assert {e.actor_id for e in trail.recorded()} == {root}
    assert stored_user(in_db, "bob@example.com").is_superuser


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "bob@example.com", "username": "bob"}, "password"),
        ({**NEW_USER, "password": "short"}, "password"),
        ({**NEW_USER, "email": "not an email"}, "email"),
        ({**NEW_USER, "send_invite": "yes"}, "send_invite"),
        ({**NEW_USER, "is_active": False}, "is_active"),
    ],
)
def test_create_user_rejects_invalid_bodies(client, superuser_headers, in_db, body, field):
    response = client.post("/users/", json=body, headers=superuser_headers)
    body = assert_error(response, 422, "validation_error")
    assert field in body["errors"]["json"]
    assert stored_user(in_db, "bob@example.com") is None


def test_create_user_with_a_taken_email_is_409(client, superuser_headers, alice_tokens):
    body = {**NEW_USER, "email": "ALICE@example.com"}
    assert_error(client.post("/users/", json=body, headers=superuser_headers), 409, "email_taken")


def test_create_user_refuses_ordinary_users(client, alice_headers, in_db):
    assert_error(client.post("/users/", json=NEW_USER, headers=alice_headers), 403)
    assert stored_user(in_db, "bob@example.com") is None
