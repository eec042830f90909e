"""The operator CLI: ``flask users ...`` and ``flask tokens ...``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from auth_service.extensions import db
from auth_service.persistence.models import RefreshToken, Session, User, new_uuid, utcnow
from auth_service.services.accounts import find_by_email
from helpers import PASSWORD, row_count, stored_user, token_rows

NEW_PASSWORD = "a completely new passphrase"


def create_superuser(runner, email="root@example.com", username="root", password=PASSWORD):
    return runner.invoke(
        args=[
            "users",
            "create-superuser",
            "--email",
            email,
            "--username",
            username,
            "--password",
            password,
        ]
    )


# --- users create-superuser -----------------------------------------------------------


def test_create_superuser(runner, in_db):
    result = create_superuser(runner, email=" Root@Example.com ")
    assert result.exit_code == 0, result.output
    assert "Created superuser root@example.com" in result.output
    user = stored_user(in_db, "root@example.com")
    assert user.is_superuser is True
    assert user.is_active is True
    assert user.username == "root"
    assert user.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(user.password_hash, PASSWORD)


def test_created_superuser_can_list_users(runner, auth, client):
    assert create_superuser(runner).exit_code == 0
    tokens = auth.login("root@example.com").json
    assert client.get("/users/", headers=auth.bearer(tokens["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "email, username, message",
    [
        ("ROOT@example.com", "other", "An account with this email already exists."),
        ("other@example.com", "ROOT", "This username is already taken."),
    ],
)
def test_create_superuser_duplicate_fails(runner, in_db, email, username, message):
    assert create_superuser(runner).exit_code == 0
    result = create_superuser(runner, email=email, username=username)
    assert result.exit_code == 1
    assert message in result.output
    assert row_count(in_db, User) == 1


@pytest.mark.parametrize(
    "email, username, password, field",
    [
        ("not-an-email", "root", PASSWORD, "email"),
        ("root@example.com", "r", PASSWORD, "username"),
        ("root@example.com", "ro ot", PASSWORD, "username"),
        ("root@example.com", "root", "short", "password"),
        ("root@example.com", "root", "x" * 129, "password"),
    ],
)
def test_create_superuser_validates_input(runner, in_db, email, username, password, field):
    result = create_superuser(runner, email=email, username=username, password=password)
    assert result.exit_code == 2  # click.UsageError
    assert f"{field}:" in result.output
    assert stored_user(in_db, "root@example.com") is None


def test_create_superuser_prompts_for_a_confirmed_password(runner, in_db):
    result = runner.invoke(
        args=["users", "create-superuser", "--email", "root@example.com", "--username", "root"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert PasswordHasher().verify(stored_user(in_db, "root@example.com").password_hash, PASSWORD)


# --- users list -----------------------------------------------------------------------


def test_list_users(runner, auth, in_db):
    assert create_superuser(runner).exit_code == 0
    auth.signup()
    auth.signup("bob@example.com", "bob")
    assert runner.invoke(args=["users", "deactivate", "bob@example.com"]).exit_code == 0

    result = runner.invoke(args=["users", "list"])

    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split("\t")[1:] for line in lines[:3]] == [
        ["root@example.com", "root", "superuser"],
        ["alice@example.com", "alice", "-"],
        ["bob@example.com", "bob", "inactive"],
    ]
    assert lines[3] == "3 user(s)."


def test_list_users_empty(runner):
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0
    assert result.output == "0 user(s).\n"


# --- users activate / deactivate ------------------------------------------------------


def test_deactivate_blocks_login_and_revokes_sessions(runner, auth, in_db):
    auth.signup_and_login()
    auth.login()
    user_id = stored_user(in_db).id

    result = runner.invoke(args=["users", "deactivate", "Alice@Example.com"])

    assert result.exit_code == 0, result.output
    assert stored_user(in_db).is_active is False
    rows = token_rows(in_db, user_id)
    assert len(rows) == 2
    assert all(r.revoked_at is not None and r.revoked_reason == "deactivated" for r in rows)
    assert auth.login().status_code == 401


def test_activate_restores_login(runner, auth, in_db):
    auth.signup()
    assert runner.invoke(args=["users", "deactivate", "alice@example.com"]).exit_code == 0

    result = runner.invoke(args=["users", "activate", "alice@example.com"])

    assert result.exit_code == 0, result.output
    assert stored_user(in_db).is_active is True
    assert auth.login().status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ["users", "activate", "ghost@example.com"],
        ["users", "deactivate", "ghost@example.com"],
        ["users", "set-password", "ghost@example.com", "--password", NEW_PASSWORD],
    ],
)
def test_unknown_email_fails(runner, auth, args):
    auth.signup()
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert "No user with email 'ghost@example.com'" in result.output


# --- users set-password ---------------------------------------------------------------


def test_set_password_changes_the_hash_and_revokes_sessions(runner, auth, client, in_db):
    tokens = auth.signup_and_login()
    before = stored_user(in_db)

    result = runner.invoke(
        args=["users", "set-password", "alice@example.com", "--password", NEW_PASSWORD]
    )

    assert result.exit_code == 0, result.output
    after = stored_user(in_db)
    assert after.password_hash != before.password_hash
    assert PasswordHasher().verify(after.password_hash, NEW_PASSWORD)
    assert after.token_version == before.token_version + 1
    assert [r.revoked_reason for r in token_rows(in_db, after.id)] == ["password_changed"]
    assert client.get("/auth/me", headers=auth.bearer(tokens["access_token"])).status_code == 401


def test_set_password_old_password_stops_working(runner, auth):
    auth.signup()
    assert (
        runner.invoke(
            args=["users", "set-password", "alice@example.com", "--password", NEW_PASSWORD]
        ).exit_code
        == 0
    )
    assert auth.login().status_code == 401
    assert auth.login(password=NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize("password", ["short", "x" * 129, "nul\x00in the middle"])
def test_set_password_enforces_the_policy(runner, auth, in_db, password):
    auth.signup()
    before = stored_user(in_db).password_hash
    result = runner.invoke(
        args=["users", "set-password", "alice@example.com", "--password", password]
    )
    assert result.exit_code == 2
    assert "password:" in result.output
    assert stored_user(in_db).password_hash == before


# --- tokens purge ---------------------------------------------------------------------


@pytest.fixture
def aged_tokens(auth, in_db):
    """Sessions of every age and state, each with its refresh token: name -> jti."""
    auth.signup()
    now = utcnow()
    days = lambda n: timedelta(days=n)  # noqa: E731
    specs = {
        "live": dict(expires_at=now + days(7)),
        "expired_10d": dict(expires_at=now - days(10)),
        "expired_1d": dict(expires_at=now - days(1)),
        "revoked_10d": dict(expires_at=now + days(3), revoked_at=now - days(10)),
        "revoked_1d": dict(expires_at=now + days(3), revoked_at=now - days(1)),
        "refreshed_10d_ago": dict(expires_at=now + days(3), refreshed_at=now - days(10)),
    }

    def run():
        user_id = find_by_email("alice@example.com").id
        jtis = {}
        for name, columns in specs.items():
            session = Session(id=new_uuid(), user_id=user_id, created_at=now - days(20), **columns)
            token = RefreshToken(
                jti=new_uuid(),
                family_id=session.id,
                user_id=user_id,
                created_at=now - days(20),
                expires_at=session.expires_at,
                revoked_at=session.revoked_at,
            )
            db.session.add_all([session, token])
            jtis[name] = token.jti
        db.session.commit()
        return jtis

    return in_db(run)


def remaining(in_db, aged_tokens) -> set[str]:
    left = {row.jti for row in token_rows(in_db)}
    return {name for name, jti in aged_tokens.items() if jti in left}


def test_purge_deletes_old_dead_tokens_only(runner, in_db, aged_tokens):
    result = runner.invoke(args=["tokens", "purge", "--days", "7"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 session(s) and their refresh tokens, and 0 expired" in result.output
    assert remaining(in_db, aged_tokens) == {
        "live",
        "expired_1d",
        "revoked_1d",
        "refreshed_10d_ago",
    }


def test_purge_days_zero_deletes_every_dead_token(runner, in_db, aged_tokens):
    result = runner.invoke(args=["tokens", "purge", "--days", "0"])
    assert result.exit_code == 0, result.output
    assert "Deleted 4 session(s) and their refresh tokens, and 0 expired" in result.output
    assert remaining(in_db, aged_tokens) == {"live", "refreshed_10d_ago"}


def test_purge_defaults_to_seven_days(runner, in_db, aged_tokens):
    assert runner.invoke(args=["tokens", "purge"]).exit_code == 0
    assert remaining(in_db, aged_tokens) == {
        "live",
        "expired_1d",
        "revoked_1d",
        "refreshed_10d_ago",
    }


@pytest.mark.parametrize("days", ["-1", "abc"])
def test_purge_rejects_bad_days(runner, in_db, aged_tokens, days):
    result = runner.invoke(args=["tokens", "purge", "--days", days])
    assert result.exit_code == 2
    assert len(remaining(in_db, aged_tokens)) == 6
