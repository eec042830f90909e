"""Passkeys through the API, with a software authenticator (tests/passkey_authenticator.py):
registration, sign-in with no email, the login's second step, step-up, listing and
removal, and what each refuses: another origin, a replayed or unknown assertion, a sign
count that goes back, a challenge of another ceremony or account."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from freezegun import freeze_time

from auth_service.persistence.models import Session, utcnow
from config import ConfigError, ProductionConfig, TestingConfig, load_config
from helpers import (
    PASSWORD,
    PRODUCTION_SECRETS,
    assert_error,
    assert_rate_limited,
    bearer,
    claims,
    me,
    row_count,
    set_cookies,
    stored_user,
)
from mfa_helpers import DISABLED, aal1_session, enrol, first_step, second_step, session_rows
from passkey_authenticator import ORIGIN, RP_ID, SoftAuthenticator, b64url
from passkey_helpers import (
    ADDED,
    add_passkey,
    assertion,
    challenge_rows,
    login_options,
    passkey_login,
    passkey_rows,
    register,
    registration_options,
)


@pytest.fixture
def authenticator():
    return SoftAuthenticator()


@pytest.fixture
def alice_passkey(client, alice_tokens, authenticator):
    """Alice with a passkey: the registration's answer (its aal2 pair included)."""
    return add_passkey(client, alice_tokens["access_token"], authenticator, name="Laptop")


# --- registration ----------------------------------------------------------------------


def test_registration_options_ask_for_a_verified_discoverable_credential(
    client, alice_tokens, in_db
):
    options = registration_options(client, alice_tokens["access_token"], name="Laptop")

    assert options["rp"] == {"id": RP_ID, "name": "auth_service"}
    assert options["user"]["name"] == "alice@example.com"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []
    assert options["timeout"] == 300_000
    [challenge] = challenge_rows(in_db)
    assert challenge.ceremony == "registration"
    assert challenge.user_id == stored_user(in_db).id and challenge.name == "Laptop"
    assert challenge.expires_at - challenge.created_at == timedelta(minutes=5)
    assert options["challenge"] not in challenge.id  # only its digest is kept


def test_registering_a_passkey_turns_two_step_verification_on(
    client, alice_tokens, authenticator, in_db, smtp
):
    other = client.post(
        "/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
    ).json

    response = register(client, alice_tokens["access_token"], authenticator, name="Laptop")

    assert response.status_code == 201, response.json
    body = response.json
    assert body["name"] == "Laptop" and body["id"] and body["created_at"]
    assert claims(body["access_token"])["aal"] == "aal2"
    assert claims(body["access_token"])["amr"] == ["pwd", "hwk", "user", "mfa"]
    assert "refresh_token_cookie" in set_cookies(response)
    [row] = passkey_rows(in_db)
    assert row.id == body["id"] and row.sign_count == 0 and row.transports == "internal"
    assert row.credential_id == b64url(authenticator.credentials[0].credential_id)
    user = stored_user(in_db)
    assert user.mfa_enabled is True
    # As for an authenticator app: the other sessions end, older tokens die.
    assert me(client, other["access_token"]).status_code == 401
    assert me(client, alice_tokens["access_token"]).status_code == 401
    assert me(client, body["access_token"]).status_code == 200
    message = smtp.last("alice@example.com", ADDED)
    assert "Laptop" in message.get_body(("plain",)).get_content()
    assert challenge_rows(in_db) == []


def test_a_second_passkey_excludes_the_first_and_needs_aal2(
    client, app, alice_passkey, authenticator
):
    options = registration_options(client, alice_passkey["access_token"])
    assert [c["id"] for c in options["excludeCredentials"]] == [
        alice_passkey_credential(authenticator)
    ]
    assert options["excludeCredentials"][0]["transports"] == ["internal"]

    aal1 = aal1_session(app)
    refused = client.post(
        "/auth/passkeys/register/options", headers=bearer(aal1["access_token"]), json={}
    )
    assert_error(refused, 403, "mfa_required")


def alice_passkey_credential(authenticator: SoftAuthenticator) -> str:
    return b64url(authenticator.credentials[0].credential_id)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda a: setattr(a, "origin", "https://evil.example"), id="other-origin"),
        pytest.param(lambda a: setattr(a, "user_verified", False), id="no-user-verification"),
    ],
)
def test_a_registration_is_refused_and_its_challenge_spent(
    client, alice_tokens, authenticator, in_db, spoil
):
    spoil(authenticator)

    response = register(client, alice_tokens["access_token"], authenticator)

    assert_error(response, 400, "passkey_registration_failed")
    assert passkey_rows(in_db) == [] and challenge_rows(in_db) == []
    assert stored_user(in_db).mfa_enabled is False


def test_a_registration_challenge_works_once_and_for_its_account(
    client, app, alice_tokens, authenticator, in_db
):
    token = alice_tokens["access_token"]
    options = registration_options(client, token)
    credential = authenticator.create(options)
    bob = app.test_client()
    bob.post(
        "/auth/signup",
        json={"email": "bob@example.com", "username": "bob", "password": PASSWORD},
    )
    bob_token = bob.post(
        "/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    ).json["access_token"]

    stolen = client.post("/auth/passkeys/register", headers=bearer(bob_token), json=credential)
    assert_error(stolen, 400, "passkey_registration_failed")
    first = client.post("/auth/passkeys/register", headers=bearer(token), json=credential)
    assert first.status_code == 201, first.json
    again = client.post(
        "/auth/passkeys/register", headers=bearer(first.json["access_token"]), json=credential
    )
    assert_error(again, 400, "passkey_registration_failed")
    assert len(passkey_rows(in_db)) == 1


def test_a_login_challenge_does_not_register(client, alice_tokens, authenticator):
    options = login_options(client)
    fake = authenticator.create({**options, "rp": {"id": RP_ID}, "user": {"id": "AAAA"}})
    response = client.post(
        "/auth/passkeys/register", headers=bearer(alice_tokens["access_token"]), json=fake
    )
    assert_error(response, 400, "passkey_registration_failed")


def test_registration_after_the_reauthentication_window_needs_the_password(
    client, alice_tokens, authenticator
):
    token = alice_tokens["access_token"]
    with freeze_time(utcnow() + timedelta(minutes=6)):
        refused = client.post("/auth/passkeys/register/options", headers=bearer(token), json={})
        assert_error(refused, 400)
        confirmed = client.post(
            "/auth/passkeys/register/options",
            headers=bearer(token),
            json={"password": PASSWORD},
        )
        assert confirmed.status_code == 200, confirmed.json


# --- signing in ------------------------------------------------------------------------


def test_signing_in_with_a_passkey_and_no_email(client, alice_passkey, authenticator, in_db):
    options = login_options(client)
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "required" and options["rpId"] == RP_ID

    response = passkey_login(client, authenticator.get(options))

    assert response.status_code == 200, response.json
    body = response.json
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "csrf_token"}
    token = claims(body["access_token"])
    assert token["aal"] == "aal2" and token["amr"] == ["hwk", "user", "mfa"]
    cookies = set_cookies(response)
    assert {"refresh_token_cookie", "csrf_refresh_token", "auth_device"} <= set(cookies)
    assert me(client, body["access_token"]).json["email"] == "alice@example.com"
    [row] = passkey_rows(in_db)
    assert row.sign_count == 1 and row.last_used_at is not None


def test_login_options_list_the_passkeys_of_an_email_and_answer_alike_for_others(
    client, alice_passkey, authenticator, auth
):
    listed = login_options(client, "Alice@Example.com")
    assert [c["id"] for c in listed["allowCredentials"]] == [
        alice_passkey_credential(authenticator)
    ]
    auth.signup("bob@example.com", "bob")
    for email in ("bob@example.com", "nobody@example.com"):
        other = login_options(client, email)
        assert set(other) == set(listed) and other["allowCredentials"] == []


def test_a_replayed_assertion_is_refused(client, alice_passkey, authenticator, in_db):
    credential = assertion(client, authenticator)
    assert passkey_login(client, credential).status_code == 200

    replay = passkey_login(client, credential)

    assert_error(replay, 401, "invalid_passkey")
    assert row_count(in_db, Session) == 2  # the registration's and the first login's


def test_an_unknown_credential_answers_as_a_wrong_signature(
    client, alice_passkey, authenticator, in_db
):
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": RP_ID}, "user": {"id": "AAAA"}, "challenge": "AAAA"})
    unknown = passkey_login(client, assertion(client, stranger))
    forged = assertion(client, authenticator)
    forged["response"]["signature"] = assertion(client, stranger)["response"]["signature"]
    wrong = passkey_login(client, forged)

    assert_error(unknown, 401, "invalid_passkey")
    assert unknown.json == wrong.json


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"origin": "https://evil.example"}, id="other-origin"),
        pytest.param({"origin": "http://auth.example.test"}, id="plain-http"),
    ],
)
def test_an_assertion_from_another_origin_is_refused(client, alice_passkey, authenticator, kwargs):
    response = passkey_login(client, assertion(client, authenticator, **kwargs))
    assert_error(response, 401, "invalid_passkey")


def test_an_assertion_without_user_verification_is_refused(client, alice_passkey, authenticator):
    authenticator.user_verified = False
    assert_error(passkey_login(client, assertion(client, authenticator)), 401, "invalid_passkey")


def test_a_sign_count_that_goes_back_is_refused_and_logged(
    client, alice_passkey, authenticator, in_db, caplog
):
    assert passkey_login(client, assertion(client, authenticator, sign_count=5)).status_code == 200

    with caplog.at_level(logging.WARNING):
        cloned = passkey_login(client, assertion(client, authenticator, sign_count=3))

    assert_error(cloned, 401, "invalid_passkey")
    assert passkey_rows(in_db)[0].sign_count == 5
    assert any("cloned authenticator" in r.getMessage() for r in caplog.records)


def test_an_authenticator_without_a_counter_signs_in_again_and_again(client, in_db, auth):
    authenticator = SoftAuthenticator(counter=False)
    add_passkey(client, auth.signup_and_login()["access_token"], authenticator)
    for _ in range(3):
        assert passkey_login(client, assertion(client, authenticator)).status_code == 200
    assert passkey_rows(in_db)[0].sign_count == 0


def test_an_expired_challenge_is_refused(client, alice_passkey, authenticator):
    credential = assertion(client, authenticator)
    with freeze_time(utcnow() + timedelta(minutes=5, seconds=1)):
        assert_error(passkey_login(client, credential), 401, "invalid_passkey")


def test_a_deactivated_account_cannot_sign_in_with_its_passkey(
    client, alice_passkey, authenticator, in_db
):
    def deactivate():
        from auth_service.services.accounts import find_by_email

        find_by_email("alice@example.com").is_active = False

    in_db(deactivate)
    assert_error(passkey_login(client, assertion(client, authenticator)), 401, "invalid_passkey")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "x", "rawId": "x", "type": "public-key"},
        {"id": "x", "rawId": "x", "type": "other", "response": {}},
        {
            "id": "x",
            "rawId": "x",
            "type": "public-key",
            "response": {"clientDataJSON": "x", "authenticatorData": "x", "signature": "!"},
        },
    ],
)
def test_malformed_assertions_are_validation_errors(client, body):
    assert_error(client.post("/auth/passkeys/login", json=body), 422, "validation_error")


def test_garbage_in_well_formed_fields_is_a_refusal(client, alice_passkey, authenticator):
    credential = assertion(client, authenticator)
    credential["response"]["authenticatorData"] = "AAAA"
    assert_error(passkey_login(client, credential), 401, "invalid_passkey")
    credential["response"]["clientDataJSON"] = "AAAA"
    assert_error(passkey_login(client, credential), 401, "invalid_passkey")


def test_passkey_logins_are_rate_limited_as_logins(client, alice_passkey, authenticator, limits):
    limits(LOGIN_PER_IP="2 per minute")
    client.post("/auth/passkeys/login/options", json={})
    client.post("/auth/passkeys/login/options", json={})
    assert_rate_limited(client.post("/auth/passkeys/login/options", json={}))


def test_refused_assertions_spend_the_failure_budgets(client, alice_passkey, authenticator, limits):
    options = [login_options(client) for _ in range(3)]
    limits(LOGIN_FAILURES_PER_IP="2 per minute")
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": RP_ID}, "user": {"id": "AAAA"}, "challenge": "AAAA"})
    for index in range(2):
        assert_error(passkey_login(client, stranger.get(options[index])), 401, "invalid_passkey")
    assert_rate_limited(passkey_login(client, authenticator.get(options[2])))


# --- the login's second step and step-up -------------------------------------------------


def test_a_password_login_asks_for_the_passkey(client, alice_passkey, authenticator, in_db):
    response = client.post("/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert response.json["mfa_required"] is True
    assert response.json["methods"] == ["passkey"]

    done = second_step(
        client,
        response.json["mfa_token"],
        passkey=assertion(client, authenticator, "alice@example.com"),
    )

    assert done.status_code == 200, done.json
    token = claims(done.json["access_token"])
    assert token["aal"] == "aal2" and token["amr"] == ["pwd", "hwk", "user", "mfa"]


def test_the_second_step_refuses_a_passkey_of_another_account(client, app, alice_passkey, auth):
    bob = app.test_client()
    assert (
        bob.post(
            "/auth/signup",
            json={"email": "bob@example.com", "username": "bob", "password": PASSWORD},
        ).status_code
        == 201
    )
    bob_token = bob.post(
        "/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    ).json["access_token"]
    bobs = SoftAuthenticator()
    add_passkey(bob, bob_token, bobs)
    mfa_token = first_step(client)

    refused = second_step(client, mfa_token, passkey=assertion(client, bobs))

    assert_error(refused, 401, "invalid_mfa_code")


def test_an_app_and_a_passkey_offer_both(client, alice_tokens, authenticator, in_db):
    enrolled = enrol(client, alice_tokens["access_token"])
    add_passkey(client, enrolled["access_token"], authenticator)

    methods = client.post(
        "/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
    ).json["methods"]

    assert methods == ["totp", "passkey", "recovery_code"]
    # Removing the app leaves two-step verification on: the passkey is a factor.
    token = client.post("/auth/passkeys/login", json=assertion(client, authenticator)).json[
        "access_token"
    ]
    removed = client.delete(f"/auth/mfa/factors/{enrolled['factor_id']}", headers=bearer(token))
    assert removed.status_code == 204
    assert stored_user(in_db).mfa_enabled is True


def test_a_step_up_with_a_passkey(client, app, alice_passkey, authenticator, in_db):
    aal1 = aal1_session(app)
    passkey_id = alice_passkey["id"]
    refused = client.delete(
        f"/users/me/passkeys/{passkey_id}", headers=bearer(aal1["access_token"])
    )
    assert_error(refused, 403, "mfa_required")

    response = client.post(
        "/auth/mfa/passkey",
        headers=bearer(aal1["access_token"]),
        json=assertion(client, authenticator),
    )

    assert response.status_code == 200, response.json
    token = claims(response.json["access_token"])
    assert token["aal"] == "aal2" and token["sid"] == claims(aal1["access_token"])["sid"]
    assert token["amr"] == ["pwd", "hwk", "user", "mfa"]
    session = next(s for s in session_rows(in_db) if s.id == token["sid"])
    assert session.aal == "aal2"


def test_a_step_up_with_another_accounts_passkey_is_refused(client, app, alice_passkey):
    aal1 = aal1_session(app)
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": RP_ID}, "user": {"id": "AAAA"}, "challenge": "AAAA"})
    response = client.post(
        "/auth/mfa/passkey",
        headers=bearer(aal1["access_token"]),
        json=assertion(client, stranger),
    )
    assert_error(response, 400, "wrong_passkey")


# --- listing and removing ----------------------------------------------------------------


def test_listing_passkeys(client, alice_passkey, authenticator):
    passkey_login(client, assertion(client, authenticator))
    response = client.get("/users/me/passkeys", headers=bearer(alice_passkey["access_token"]))
    assert response.status_code == 200
    [listed] = response.json["passkeys"]
    assert set(listed) == {"id", "name", "created_at", "last_used_at", "backed_up"}
    assert listed["id"] == alice_passkey["id"] and listed["name"] == "Laptop"
    assert listed["last_used_at"] is not None and listed["backed_up"] is False


def test_removing_the_last_passkey_turns_two_step_verification_off(
    client, alice_passkey, authenticator, in_db, smtp
):
    token = alice_passkey["access_token"]
    response = client.delete(f"/users/me/passkeys/{alice_passkey['id']}", headers=bearer(token))

    assert response.status_code == 204
    assert passkey_rows(in_db) == []
    assert stored_user(in_db).mfa_enabled is False
    assert smtp.last("alice@example.com", DISABLED)
    gone = passkey_login(client, assertion(client, authenticator))
    assert_error(gone, 401, "invalid_passkey")


def test_anyone_elses_passkey_is_a_404(client, app, alice_passkey, auth):
    other = app.test_client()
    other.post(
        "/auth/signup",
        json={"email": "bob@example.com", "username": "bob", "password": PASSWORD},
    )
    bob_token = other.post(
        "/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    ).json["access_token"]
    for passkey_id in (alice_passkey["id"], "nope", "a\x00b"):
        response = client.delete(f"/users/me/passkeys/{passkey_id}", headers=bearer(bob_token))
        assert_error(response, 404, "passkey_not_found")


def test_the_last_way_to_sign_in_cannot_be_removed(client, app, in_db, authenticator):
    from auth_service.extensions import db
    from auth_service.services import accounts, sessions

    def passwordless():
        # The signing key is made before the account's write: SQLite's write lock would
        # make the key's own statement wait (requests load the keys before any write).
        client.get("/.well-known/jwks.json")
        with app.test_request_context():
            user = accounts.create_user("carol@example.com", "carol", None)
            pair = sessions.start_session(user, [sessions.FEDERATED])
            db.session.commit()
            return pair.access_token

    token = passwordless()
    first = add_passkey(client, token, authenticator)
    second = add_passkey(client, first["access_token"], SoftAuthenticator())
    token = second["access_token"]

    assert (
        client.delete(f"/users/me/passkeys/{first['id']}", headers=bearer(token)).status_code == 204
    )
    last = client.delete(f"/users/me/passkeys/{second['id']}", headers=bearer(token))

    assert_error(last, 409, "last_passkey")
    assert len(passkey_rows(in_db)) == 1


def test_a_superuser_reset_removes_the_passkeys(client, alice_passkey, superuser_headers, in_db):
    user_id = stored_user(in_db).id
    response = client.delete(f"/users/{user_id}/mfa", headers=superuser_headers)
    assert response.status_code in (200, 204), response.json
    assert passkey_rows(in_db) == [] and stored_user(in_db).mfa_enabled is False


# --- settings ----------------------------------------------------------------------------


def production(**environ):
    return load_config(ProductionConfig, {**PRODUCTION_SECRETS, **environ})


def test_the_relying_party_follows_public_base_url_and_cors_origins():
    settings = production(
        PUBLIC_BASE_URL="https://auth.example.com/api",
        CORS_ORIGINS="https://app.example.com,https://other.example.org",
    )
    assert settings["WEBAUTHN_RP_ID"] == "auth.example.com"
    assert settings["WEBAUTHN_ORIGINS"] == ["https://auth.example.com"]

    parent = production(
        PUBLIC_BASE_URL="https://auth.example.com",
        WEBAUTHN_RP_ID="example.com",
        CORS_ORIGINS="https://app.example.com,https://other.example.org",
    )
    assert parent["WEBAUTHN_ORIGINS"] == ["https://auth.example.com", "https://app.example.com"]


def test_an_ip_address_base_url_uses_localhost():
    settings = production(PUBLIC_BASE_URL="http://127.0.0.1:8000")
    assert settings["WEBAUTHN_RP_ID"] == "localhost"
    assert settings["WEBAUTHN_ORIGINS"] == ["http://localhost:8000"]


def test_an_origin_off_the_rp_id_is_refused():
    with pytest.raises(ConfigError, match="WEBAUTHN_ORIGINS"):
        production(WEBAUTHN_RP_ID="example.com", WEBAUTHN_ORIGINS="https://evil.example")


def test_without_a_relying_party_passkeys_answer_404(make_app, alice_headers):
    class NoPasskeys(TestingConfig):
        PUBLIC_BASE_URL = None

    client = make_app(NoPasskeys).test_client()
    assert_error(client.post("/auth/passkeys/login/options", json={}), 404, "passkeys_disabled")


def test_the_soft_authenticator_uses_the_test_origin(app):
    assert app.config["WEBAUTHN_ORIGINS"] == [ORIGIN]
