"""Password writes are conditional: of two changes racing, the later one finds the hash
it read gone and fails cleanly, so no change undoes another's revocations.

The races run twice: interleaved deterministically (the competing write lands while a
request is hashing its new password), and as real parallel requests, repeated.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import User
from auth_service.security import link_tokens
from auth_service.security.passwords import verify_password
from auth_service.services import accounts
from helpers import PASSWORD, assert_error, bearer, me, refresh, stored_user

RACE_TRIES = 10
CHANGED = "changed by the attacker 1"
RESET = "reset by the owner 2"


def change_password(client, access_token, new, current=PASSWORD):
    return client.put(
        "/auth/change-password",
        headers=bearer(access_token),
        json={"current_password": current, "new_password": new},
    )


def reset_password(client, token, new=RESET):
    return client.post("/auth/reset-password", json={"token": token, "new_password": new})


@pytest.fixture
def reset_token(app, alice_tokens):
    """A reset token for Alice, as her reset email carries it."""
    with app.test_request_context():
        return link_tokens.make_token(
            accounts.find_by_email("alice@example.com"), link_tokens.RESET_PASSWORD
        )


@pytest.fixture
def while_hashing(monkeypatch):
    """``while_hashing(fn)``: the next new password hashed by accounts runs ``fn()`` first,
    i.e. between the request's read of the account and its write."""

    def arrange(competing):
        real_hash = accounts.hash_password
        pending = [competing]

        def hash_then_compete(password):
            hashed = real_hash(password)
            if pending:
                pending.pop()()
            return hashed

        monkeypatch.setattr(accounts, "hash_password", hash_then_compete)

    return arrange


def stored_hash_verifies(app, password) -> bool:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "alice@example.com"))
        return verify_password(user.password_hash, password)


def token_version(in_db) -> int:
    return stored_user(in_db).token_version


def test_a_reset_landing_during_a_change_wins_and_ends_the_changers_session(
    app, client, alice_tokens, reset_token, while_hashing, in_db
):
    victim = app.test_client()
    resets = []
    while_hashing(lambda: resets.append(reset_password(victim, reset_token)))

    response = change_password(client, alice_tokens["access_token"], CHANGED)

    assert resets[0].status_code == 200
    assert_error(response, 409, "password_changed_concurrently")
    assert stored_hash_verifies(app, RESET)
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401
    assert me(client, alice_tokens["access_token"]).status_code == 401


def test_a_change_landing_during_a_reset_makes_the_reset_fail(
    app, client, alice_tokens, reset_token, while_hashing
):
    changes = []
    while_hashing(
        lambda: changes.append(
            change_password(app.test_client(), alice_tokens["access_token"], CHANGED)
        )
    )

    response = reset_password(client, reset_token)

    assert changes[0].status_code == 200
    assert_error(response, 400, "invalid_token")
    assert stored_hash_verifies(app, CHANGED)


def test_two_changes_each_bump_the_token_version_or_fail(
    app, client, auth, alice_tokens, while_hashing, in_db
):
    other = auth.login().json
    before = token_version(in_db)
    seconds = []
    while_hashing(
        lambda: seconds.append(
            change_password(app.test_client(), other["access_token"], "second new password 3")
        )
    )

    first = change_password(client, alice_tokens["access_token"], CHANGED)

    assert seconds[0].status_code == 200
    assert_error(first, 409, "password_changed_concurrently")
    assert token_version(in_db) == before + 1
    assert me(client, seconds[0].json["access_token"]).status_code == 200
    assert me(client, alice_tokens["access_token"]).status_code == 401


def test_a_rehash_at_login_never_restores_the_old_password(
    app, client, auth, reset_token, while_hashing, monkeypatch
):
    """The login verified the old password just before a reset landed: the upgrade of its
    hash does nothing, and the tokens it hands out die at once (older token version)."""
    monkeypatch.setattr(accounts, "needs_rehash", lambda password_hash: True)
    while_hashing(lambda: reset_password(app.test_client(), reset_token))

    login = auth.login()

    assert stored_hash_verifies(app, RESET)
    assert not stored_hash_verifies(app, PASSWORD)
    if login.status_code == 200:
        assert me(client, login.json["access_token"]).status_code == 401
        assert refresh(client, login.json["refresh_token"]).status_code == 401


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_parallel_changes_of_one_password_leave_one_winner(app, auth, in_db, attempt):
    auth.signup()
    sessions = [auth.login().json for _ in range(2)]
    before = token_version(in_db)
    start = threading.Barrier(2)

    def change(index):
        start.wait(timeout=30)
        return change_password(
            app.test_client(), sessions[index]["access_token"], f"new password number {index}"
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(change, range(2)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([200, 401], [200, 409]), [r.json for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    assert stored_hash_verifies(app, f"new password number {winner}")
    assert token_version(in_db) == before + 1
    for session in sessions:
        assert refresh(app.test_client(), session["refresh_token"]).status_code == 401
    assert me(app.test_client(), responses[winner].json["access_token"]).status_code == 200


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_two_superusers_deactivating_each_other_leave_one_active(
    app, auth, make_superuser, in_db, attempt
):
    admins = []
    for name in ("root", "admin"):
        admins.append(auth.signup_and_login(f"{name}@example.com", name))
        make_superuser(f"{name}@example.com")
    ids = [stored_user(in_db, f"{name}@example.com").id for name in ("root", "admin")]
    start = threading.Barrier(2)

    def deactivate_the_other(index):
        start.wait(timeout=30)
        return app.test_client().put(
            f"/users/{ids[1 - index]}/deactivate", headers=bearer(admins[index]["access_token"])
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(deactivate_the_other, range(2)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([200, 401], [200, 409]), [r.json for r in responses]
    active = in_db(
        lambda: db.session.scalar(
            sa.select(sa.func.count()).where(User.is_superuser, User.is_active)
        )
    )
    assert active == 1


def test_the_cli_refuses_to_deactivate_the_last_active_superuser(
    runner, auth, make_superuser, in_db
):
    auth.signup("root@example.com", "root")
    make_superuser("root@example.com")

    result = runner.invoke(args=["users", "deactivate", "root@example.com"])

    assert result.exit_code == 1
    assert result.output == "Error: This is the last active superuser.\n"
    assert stored_user(in_db, "root@example.com").is_active


def test_the_last_active_superuser_cannot_delete_the_account(client, auth, make_superuser, in_db):
    root = auth.signup_and_login("root@example.com", "root")
    make_superuser("root@example.com")

    response = client.delete(
        "/users/me", headers=bearer(root["access_token"]), json={"password": PASSWORD}
    )

    assert_error(response, 409, "last_superuser")
    assert stored_user(in_db, "root@example.com") is not None
    assert me(client, root["access_token"]).status_code == 200


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_two_superusers_deleting_their_accounts_at_once_leave_one(
    app, auth, make_superuser, in_db, attempt
):
    admins = []
    for name in ("root", "admin"):
        admins.append(auth.signup_and_login(f"{name}@example.com", name))
        make_superuser(f"{name}@example.com")
    start = threading.Barrier(2)

    def delete_own(index):
        start.wait(timeout=30)
        return app.test_client().delete(
            "/users/me", json={"password": PASSWORD}, headers=bearer(admins[index]["access_token"])
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(delete_own, range(2)))

    assert sorted(r.status_code for r in responses) == [204, 409], [r.json for r in responses]
    active = in_db(
        lambda: db.session.scalar(
            sa.select(sa.func.count()).where(User.is_superuser, User.is_active)
        )
    )
    assert active == 1
