"""flask users show|delete|promote|demote|revoke-sessions EMAIL: audited with no actor,
one-line errors and a non-zero exit."""

from __future__ import annotations

import pytest

from audit_helpers import all_events
from helpers import me, refresh, stored_user


def users(runner, *args, **kwargs):
    return runner.invoke(args=["users", *args], **kwargs)


def events_of(in_db, type):
    return [(e.user_id, e.actor_id) for e in all_events(in_db) if e.type == type]


def test_show(runner, alice_tokens, in_db):
    result = users(runner, "show", "Alice@Example.com")
    assert result.exit_code == 0, result.output
    assert "email:\talice@example.com" in result.output
    assert "superuser:\tno" in result.output
    assert "email verified:\tno" in result.output


@pytest.mark.parametrize(
    "args", [["show"], ["delete", "--yes"], ["promote"], ["demote"], ["revoke-sessions"]]
)
def test_an_unknown_email_is_one_line_and_exit_1(runner, args):
    result = users(runner, *args, "nobody@example.com")
    assert result.exit_code == 1
    assert result.output == "Error: No user with email 'nobody@example.com'.\n"


def test_promote_and_demote(runner, auth, alice_tokens, make_superuser, in_db):
    auth.signup("root@example.com", "root")
    make_superuser("root@example.com")
    alice = stored_user(in_db).id
    assert users(runner, "promote", "alice@example.com").exit_code == 0
    assert stored_user(in_db).is_superuser
    assert users(runner, "promote", "alice@example.com").exit_code == 0  # no change, no event
    result = users(runner, "demote", "alice@example.com")
    assert result.exit_code == 0, result.output
    assert not stored_user(in_db).is_superuser
    assert events_of(in_db, "superuser_granted") == [(alice, None)]
    assert events_of(in_db, "superuser_revoked") == [(alice, None)]


def test_the_last_active_superuser_cannot_be_demoted_or_deleted(
    runner, auth, make_superuser, in_db
):
    auth.signup("root@example.com", "root")
    make_superuser("root@example.com")
    for args in (["demote"], ["delete", "--yes"]):
        result = users(runner, *args, "root@example.com")
        assert result.exit_code == 1
        assert result.output == "Error: This is the last active superuser.\n"
    assert stored_user(in_db, "root@example.com").is_superuser
    assert events_of(in_db, "superuser_revoked") == []


def test_delete_asks_for_confirmation(runner, alice_tokens, in_db):
    declined = users(runner, "delete", "alice@example.com", input="n\n")
    assert declined.exit_code == 1
    assert stored_user(in_db) is not None
    alice = stored_user(in_db).id
    result = users(runner, "delete", "alice@example.com", input="y\n")
    assert result.exit_code == 0, result.output
    assert stored_user(in_db) is None
    assert events_of(in_db, "account_deleted") == [(alice, None)]


def test_revoke_sessions(runner, client, auth, alice_tokens, in_db):
    auth.login()
    result = users(runner, "revoke-sessions", "alice@example.com")
    assert result.exit_code == 0, result.output
    assert result.output == "Revoked 2 session(s) of alice@example.com.\n"
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 401
    assert me(client, alice_tokens["access_token"]).status_code == 401
    assert events_of(in_db, "logout_all") == [(stored_user(in_db).id, None)]
