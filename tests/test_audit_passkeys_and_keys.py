"""The audit events of passkeys and of the signing keys: each recorded exactly once for
its action, about the right account, by the right actor (none for the CLI); a refused
passkey sign-in or second step recorded as a password's is; no credential, token or
private key in any event."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from audit_helpers import Trail, all_events, as_text
from auth_service.security import key_material
from helpers import PASSWORD, bearer, claims
from mfa_helpers import aal1_session, first_step
from passkey_authenticator import RP_ID, SoftAuthenticator
from passkey_helpers import add_passkey, assertion, registration_options

PASSKEY_METHODS = ["hwk", "user", "mfa"]


@pytest.fixture
def trail(in_db):
    return Trail(in_db)


@pytest.fixture
def authenticator():
    return SoftAuthenticator()


def stranger() -> SoftAuthenticator:
    """An authenticator holding a credential no account has."""
    other = SoftAuthenticator()
    other.create({"rp": {"id": RP_ID}, "user": {"id": "AAAA"}, "challenge": "AAAA"})
    return other


def traced_register(client, trail, token, authenticator, name):
    """A registration whose second request (the one that adds the passkey) is traced."""
    credential = authenticator.create(registration_options(client, token, name=name))
    headers = bearer(token)
    added = trail.call(client.post, "/auth/passkeys/register", headers=headers, json=credential)
    assert added.status_code == 201, added.json
    return added.json


def by_type(events) -> dict:
    found = {}
    for event in events:
        assert event.type not in found, f"{event.type} recorded twice"
        found[event.type] = event
    return found


def test_adding_and_removing_passkeys(client, trail, alice_tokens, authenticator):
    user_id = int(claims(alice_tokens["access_token"])["sub"])
    laptop = traced_register(client, trail, alice_tokens["access_token"], authenticator, "Laptop")
    # The first passkey turns two-step verification on: both said, once each.
    first = by_type(trail.recorded())
    assert sorted(first) == ["mfa_enabled", "passkey_added"]
    assert first["passkey_added"].details == {"passkey_id": laptop["id"], "name": "Laptop"}
    assert first["mfa_enabled"].details == {"factor": "passkey"}
    for event in first.values():
        assert (event.user_id, event.actor_id) == (user_id, user_id)

    phone = traced_register(client, trail, laptop["access_token"], SoftAuthenticator(), "Phone")
    trail.only(
        "passkey_added",
        user_id,
        actor_id=user_id,
        details={"passkey_id": phone["id"], "name": "Phone"},
    )

    headers = bearer(phone["access_token"])
    removed = trail.call(client.delete, f"/users/me/passkeys/{phone['id']}", headers=headers)
    assert removed.status_code == 204
    trail.only(
        "passkey_removed",
        user_id,
        actor_id=user_id,
        details={"passkey_id": phone["id"], "name": "Phone"},
    )

    last = trail.call(client.delete, f"/users/me/passkeys/{laptop['id']}", headers=headers)
    assert last.status_code == 204
    events = by_type(trail.recorded())
    assert sorted(events) == ["mfa_disabled", "passkey_removed"]
    assert events["passkey_removed"].details == {"passkey_id": laptop["id"], "name": "Laptop"}
    assert events["mfa_disabled"].details == {"by_admin": False}

    token = client.post("/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    own = client.get("/users/me/security-events", headers=bearer(token.json["access_token"]))
    shown = [event["type"] for event in own.json["events"]]
    assert shown.count("passkey_added") == 2 and shown.count("passkey_removed") == 2


def test_passkey_sign_ins_and_their_refusals(client, trail, alice_tokens, authenticator, in_db):
    user_id = int(claims(alice_tokens["access_token"])["sub"])
    add_passkey(client, alice_tokens["access_token"], authenticator)

    credential = assertion(client, authenticator)
    signed_in = trail.call(client.post, "/auth/passkeys/login", json=credential)
    assert signed_in.status_code == 200, signed_in.json
    trail.only(
        "login_succeeded",
        user_id,
        session_id=claims(signed_in.json["access_token"])["sid"],
        details={"methods": PASSKEY_METHODS, "aal": "aal2"},
    )

    def refused(credential, user, reason):
        response = trail.call(client.post, "/auth/passkeys/login", json=credential)
        assert response.status_code == 401, response.json
        trail.only("login_failed", user, details={"method": "passkey", "reason": reason})

    refused(credential, user_id, "no_challenge")  # a replay: its challenge is spent
    refused(assertion(client, stranger()), None, "unknown_passkey")
    forged = assertion(client, authenticator)
    forged["response"]["signature"] = assertion(client, stranger())["response"]["signature"]
    refused(forged, user_id, "passkey")
    garbled = assertion(client, authenticator)
    garbled["response"]["authenticatorData"] = "AAAA"
    refused(garbled, user_id, "passkey")
    garbled["response"]["clientDataJSON"] = "AAAA"  # names no challenge
    refused(garbled, user_id, "no_challenge")

    def deactivate():
        from auth_service.services.accounts import find_by_email

        find_by_email("alice@example.com").is_active = False

    in_db(deactivate)
    refused(assertion(client, authenticator), user_id, "inactive")


def test_a_refused_passkey_at_the_second_step_and_at_step_up(
    app, client, trail, alice_tokens, authenticator
):
    user_id = int(claims(alice_tokens["access_token"])["sub"])
    add_passkey(client, alice_tokens["access_token"], authenticator)

    wrong = trail.call(
        client.post,
        "/auth/login/mfa",
        json={"mfa_token": first_step(client), "passkey": assertion(client, stranger())},
    )
    assert wrong.status_code == 401, wrong.json
    trail.only("mfa_challenge_failed", user_id, details={"step": "login", "factor": "passkey"})

    aal1 = bearer(aal1_session(app)["access_token"])
    step_up = trail.call(
        client.post, "/auth/mfa/passkey", headers=aal1, json=assertion(client, stranger())
    )
    assert step_up.status_code == 400, step_up.json
    trail.only(
        "mfa_challenge_failed",
        user_id,
        actor_id=user_id,
        details={"step": "step_up", "factor": "passkey"},
    )


def key_events(in_db) -> list:
    return [e for e in all_events(in_db) if e.type.startswith("signing_key_")]


def test_the_keys_cli_records_rotations_and_revocations(client, runner, in_db, tmp_path):
    client.get("/.well-known/jwks.json")  # the first key exists

    rotated = runner.invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    listed = json.loads(runner.invoke(args=["keys", "list", "--json"]).output)
    (published,) = [key for key in listed if key["state"] == "next"]
    (event,) = key_events(in_db)
    assert event.type == "signing_key_rotated"
    assert (event.user_id, event.actor_id, event.ip, event.request_id) == (None,) * 4
    assert event.details == {
        "kid": published["kid"],
        "algorithm": published["algorithm"],
        "activates_at": published["activates"],
    }

    nothing_due = runner.invoke(args=["keys", "rotate", "--if-older-than", "90d"])
    assert nothing_due.exit_code == 0 and "Nothing due" in nothing_due.output
    assert len(key_events(in_db)) == 1

    revoked = runner.invoke(args=["keys", "revoke", "--yes", "--", published["kid"]])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(args=["keys", "revoke", "--yes", "--", published["kid"]])
    assert again.exit_code == 1  # refused: its transaction, event and all, rolled back
    events = key_events(in_db)
    assert [e.type for e in events] == ["signing_key_rotated", "signing_key_revoked"]
    assert events[1].details == {"kid": published["kid"], "was": "next"}
    assert events[1].actor_id is None

    private = ec.generate_private_key(ec.SECP256R1())
    pem = key_material.to_pem(private)
    path = tmp_path / "key.pem"
    path.write_text(pem)
    imported = runner.invoke(args=["keys", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    events = key_events(in_db)
    assert len(events) == 3
    kid = key_material.public_jwk(private, "ES256")["kid"]
    assert events[2].type == "signing_key_rotated"
    assert events[2].details["kid"] == kid and events[2].details["imported"] is True

    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    secret_lines = [line for line in pem.splitlines() if "-----" not in line]
    leaked = [e.type for e in all_events(in_db) for s in secret_lines if s in as_text(e)]
    assert leaked == []


def test_no_passkey_event_holds_a_credential_or_token(client, alice_tokens, authenticator, in_db):
    added = add_passkey(client, alice_tokens["access_token"], authenticator, name="Laptop")
    credential = assertion(client, authenticator)
    signed_in = client.post("/auth/passkeys/login", json=credential).json
    client.post("/auth/passkeys/login", json=credential)  # refused: a replay
    client.delete(f"/users/me/passkeys/{added['id']}", headers=bearer(signed_in["access_token"]))
    secrets = [
        credential["id"],
        credential["response"]["signature"],
        credential["response"]["clientDataJSON"],
        credential["response"]["authenticatorData"],
        alice_tokens["access_token"],
        added["access_token"],
        signed_in["access_token"],
        signed_in["refresh_token"],
    ]
    events = all_events(in_db)
    types = {event.type for event in events}
    assert {"passkey_added", "passkey_removed", "login_failed", "login_succeeded"} <= types
    leaked = [(event.type, s) for event in events for s in secrets if s in as_text(event)]
    assert leaked == []
