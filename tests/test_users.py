"""/users: the caller's own profile and superuser administration."""

from __future__ import annotations

import pytest

from auth_service.extensions import db
from auth_service.persistence.models import User
from helpers import PASSWORD, assert_error, token_rows
from helpers import user_columns as row


def add_users(in_db, specs):
    """Insert password-less users quickly: [(email, username, full_name), ...] -> ids."""

    def run():
        users = [User(email=e, username=u, full_name=n) for e, u, n in specs]
        db.session.add_all(users)
        db.session.commit()
        return [u.id for u in users]

    return in_db(run)


# --- /users/me ------------------------------------------------------------------------


def test_get_me_returns_the_profile(client, alice_headers):
    response = client.get("/users/me", headers=alice_headers)
    assert response.status_code == 200
    assert response.json["email"] == "alice@example.com"
    assert "password_hash" not in response.json


def test_get_me_requires_a_token(client):
    response = client.get("/users/me")
    assert response.status_code == 401
    assert response.json["error"] == "authorization_required"


@pytest.mark.parametrize(
    "changes",
    [
        {"full_name": "Alice Liddell"},
        {"full_name": None},
        {"username": "alice2"},
        {"username": "ALICE"},
        {"username": "alice_l", "full_name": "A. Liddell"},
    ],
)
def test_patch_me_changes_username_and_full_name(client, alice_headers, in_db, changes):
    before = row(in_db)
    response = client.patch("/users/me", json=changes, headers=alice_headers)
    assert response.status_code == 200
    after = row(in_db)
    for key, value in changes.items():
        assert response.json[key] == value
        assert after[key] == value
    untouched = set(before) - set(changes) - {"updated_at"}
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}


def test_patch_me_username_taken_ignoring_case(client, auth, alice_headers, in_db):
    assert auth.signup("bob@example.com", "bob").status_code == 201
    response = client.patch("/users/me", json={"username": "BOB"}, headers=alice_headers)
    assert response.status_code == 409
    assert response.json["error"] == "username_taken"
    assert row(in_db)["username"] == "alice"


# Fields other than username/full_name (is_superuser, email, ...): tests/security/test_mass_assignment.py
@pytest.mark.parametrize(
    "changes",
    [
        {"username": "a b"},
        {"full_name": "n" * 101},
        {"username": "alice2", "full_name": "n" * 101},
    ],
)
def test_patch_me_rejects_invalid_values_and_changes_nothing(client, alice_headers, in_db, changes):
    before = row(in_db)
    response = client.patch("/users/me", json=changes, headers=alice_headers)
    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) <= set(changes)
    assert response.json["errors"]["json"]
    assert row(in_db) == before


def test_patch_me_without_a_json_body_is_415(client, alice_headers):
    response = client.patch("/users/me", headers=alice_headers)
    assert response.status_code == 415


@pytest.mark.parametrize(
    "body, error",
    [
        (None, "password_required"),
        ({}, "password_required"),
        ({"password": ""}, "password_required"),
        ({"password": "not the password"}, "invalid_password"),
    ],
)
def test_delete_me_needs_the_right_password(client, alice_headers, in_db, body, error):
    user_id = row(in_db)["id"]
    response = client.delete("/users/me", json=body, headers=alice_headers)
    assert response.status_code == 400
    assert response.json["error"] == error
    assert row(in_db) is not None
    assert len(token_rows(in_db, user_id)) == 1


def test_delete_me_removes_the_user_and_its_tokens(client, auth, alice_headers, in_db):
    assert auth.login().status_code == 200  # a second session
    user_id = row(in_db)["id"]
    assert len(token_rows(in_db, user_id)) == 2

    response = client.delete("/users/me", json={"password": PASSWORD}, headers=alice_headers)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert row(in_db) is None
    assert token_rows(in_db, user_id) == []


def test_deleted_user_access_token_stops_working(client, alice_headers):
    assert (
        client.delete("/users/me", json={"password": PASSWORD}, headers=alice_headers).status_code
        == 204
    )
    response = client.get("/users/me", headers=alice_headers)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


def test_delete_me_keeps_other_users(client, auth, alice_headers, in_db):
    assert auth.signup("bob@example.com", "bob").status_code == 201
    assert (
        client.delete("/users/me", json={"password": PASSWORD}, headers=alice_headers).status_code
        == 204
    )
    assert row(in_db, "bob@example.com") is not None


# --- GET /users/ (superuser) ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/users/", "/users"])
def test_list_users_requires_a_token(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json["error"] == "authorization_required"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_users_without_the_slash_is_the_list_not_a_redirect(client, superuser_headers):
    # It was an HTML 308 to /users/.
    response = client.get("/users?per_page=1", headers=superuser_headers)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json["per_page"] == 1
    assert "Location" not in response.headers
    # A method it does not answer (POST creates): a JSON error (werkzeug's matcher says
    # 404 here, 405 for /users/).
    other = client.put("/users", headers=superuser_headers)
    assert_error(other, other.status_code)
    assert other.status_code in (404, 405)


def test_list_users_refuses_ordinary_users(client, alice_headers):
    response = client.get("/users/", headers=alice_headers)
    assert response.status_code == 403
    assert response.json["error"] == "forbidden"


@pytest.mark.parametrize("path", ["/users/", "/users"])
def test_list_users_as_superuser(client, superuser_headers, alice_headers, path):
    response = client.get(path, headers=superuser_headers)
    assert response.status_code == 200
    assert response.json["total"] == 2
    assert response.json["page"] == 1
    assert response.json["per_page"] == 20
    assert response.json["pages"] == 1
    assert [u["email"] for u in response.json["items"]] == ["root@example.com", "alice@example.com"]
    assert all("password_hash" not in u for u in response.json["items"])


@pytest.mark.parametrize("page, expected_count", [(1, 10), (2, 10), (3, 5), (4, 0)])
def test_list_users_paginates(client, superuser_headers, in_db, page, expected_count):
    ids = add_users(in_db, [(f"user{i}@example.com", f"user{i}", None) for i in range(24)])
    response = client.get(f"/users/?page={page}&per_page=10", headers=superuser_headers)
    assert response.status_code == 200
    body = response.json
    assert (body["total"], body["page"], body["per_page"], body["pages"]) == (25, page, 10, 3)
    assert len(body["items"]) == expected_count
    all_ids = [row(in_db, "root@example.com")["id"], *ids]
    assert [u["id"] for u in body["items"]] == all_ids[(page - 1) * 10 : page * 10]


@pytest.mark.parametrize(
    "q, expected",
    [
        ("CAROL", ["carol"]),  # email and username, any case
        ("example.org", ["dave"]),  # email domain
        ("Liddell", ["carol"]),  # full name
        ("100%", ["pct"]),  # '%' is literal
        ("a_b", ["a_b"]),  # '_' is literal
        ("_", ["a_b"]),
        ("%", ["pct"]),
        ("\\", ["bslash"]),
        ("nobody", []),
    ],
)
def test_list_users_search(client, superuser_headers, in_db, q, expected):
    add_users(
        in_db,
        [
            ("carol@example.com", "carol", "Carol Liddell"),
            ("dave@example.org", "dave", None),
            ("pct@example.com", "pct", "100% Real"),
            ("percent@example.com", "percent", "1000 Real"),
            ("ab@example.com", "a_b", None),
            ("axb@example.com", "axb", None),
            ("bslash@example.com", "bslash", "Back\\slash"),
        ],
    )
    response = client.get("/users/", query_string={"q": q}, headers=superuser_headers)
    assert response.status_code == 200
    assert [u["username"] for u in response.json["items"]] == expected
    assert response.json["total"] == len(expected)


@pytest.mark.parametrize(
    "field, value",
    [
        ("page", "0"),
        ("page", "-1"),
        ("page", "abc"),
        ("page", "1.5"),
        ("page", ""),
        ("per_page", "0"),
        ("per_page", "-1"),
        ("per_page", "101"),
        ("per_page", "abc"),
    ],
)
def test_list_users_rejects_bad_paging(client, superuser_headers, field, value):
    response = client.get("/users/", query_string={field: value}, headers=superuser_headers)
    assert response.status_code == 422
    assert list(response.json["errors"]["query"]) == [field]


# --- PUT /users/{id}/activate|deactivate (superuser) ----------------------------------


def test_deactivate_user(client, superuser_headers, alice_headers, in_db):
    user_id = row(in_db)["id"]
    response = client.put(f"/users/{user_id}/deactivate", headers=superuser_headers)
    assert response.status_code == 200
    assert response.json["id"] == user_id
    assert response.json["is_active"] is False
    assert row(in_db)["is_active"] is False


def test_deactivate_revokes_the_users_sessions(client, superuser_headers, alice_headers, in_db):
    user_id = row(in_db)["id"]
    assert client.put(f"/users/{user_id}/deactivate", headers=superuser_headers).status_code == 200
    assert [(t.revoked_at is not None, t.revoked_reason) for t in token_rows(in_db, user_id)] == [
        (True, "deactivated")
    ]
    assert client.get("/users/me", headers=alice_headers).status_code == 401


def test_activate_user(client, superuser_headers, alice_headers, in_db):
    user_id = row(in_db)["id"]
    assert client.put(f"/users/{user_id}/deactivate", headers=superuser_headers).status_code == 200
    response = client.put(f"/users/{user_id}/activate", headers=superuser_headers)
    assert response.status_code == 200
    assert response.json["is_active"] is True
    assert row(in_db)["is_active"] is True


@pytest.mark.parametrize("action", ["activate", "deactivate"])
@pytest.mark.parametrize("user_id", ["9999", "2147483648", "99999999999999999999"])
def test_activation_of_unknown_user_is_404(client, superuser_headers, action, user_id):
    response = client.put(f"/users/{user_id}/{action}", headers=superuser_headers)
    assert response.status_code == 404
    assert response.json["error"] == "user_not_found"


def test_superuser_cannot_deactivate_self(client, superuser_headers, in_db):
    own_id = row(in_db, "root@example.com")["id"]
    response = client.put(f"/users/{own_id}/deactivate", headers=superuser_headers)
    assert response.status_code == 409
    assert response.json["error"] == "cannot_deactivate_self"
    assert row(in_db, "root@example.com")["is_active"] is True


@pytest.mark.parametrize("action", ["activate", "deactivate"])
def test_activation_refuses_ordinary_users(client, auth, alice_headers, in_db, action):
    assert auth.signup("bob@example.com", "bob").status_code == 201
    bob_id = row(in_db, "bob@example.com")["id"]
    response = client.put(f"/users/{bob_id}/{action}", headers=alice_headers)
    assert response.status_code == 403
    assert row(in_db, "bob@example.com")["is_active"] is True


@pytest.mark.parametrize("action", ["activate", "deactivate"])
def test_activation_requires_a_token(client, action):
    assert client.put(f"/users/1/{action}").status_code == 401
