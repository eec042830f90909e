"""Two-step verification, managed with an access token: enrolling an authenticator app,
its factors and recovery codes, step-up to aal2 for the changes that need it, removing
the last factor, a superuser's reset and ``flask users reset-mfa``.

The clock is frozen (tests/mfa_fixtures.py): each test moves it on a step before it
proves a code again, since a code accepted once never works again.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import MfaFactor
from helpers import (
    LOGIN_TIME,
    PASSWORD,
    assert_error,
    bearer,
    claims,
    login,
    me,
    refresh,
    stored_user,
)
from mfa_helpers import (
    DISABLED,
    ENABLED,
    RECOVERY_USED,
    STEP,
    aal1_session,
    challenge,
    challenge_rows,
    enrol,
    factor_rows,
    first_step,
    recovery_rows,
    second_step,
    session_row,
    session_rows,
    start_enrolment,
    totp,
    verify,
)
from tests.mail.mail_helpers import text_part

RECOVERY_CODE = re.compile(r"^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$")
NEW_PASSWORD = "a completely new passphrase"


# --- enrolment ----------------------------------------------------------------------


def test_enrolment_returns_the_secret_uri_and_qr_code(client, alice, in_db):
    response = start_enrolment(client, alice["access_token"])

    assert response.status_code == 201
    body = response.json
    assert set(body) == {"factor_id", "secret", "otpauth_uri", "qr_svg"}
    assert re.fullmatch(r"[A-Z2-7]{32}", body["secret"])
    assert body["otpauth_uri"].startswith("otpauth://totp/auth_service:alice%40example.com?")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    assert "issuer=auth_service" in body["otpauth_uri"]
    assert body["qr_svg"].startswith("<svg") and body["qr_svg"].rstrip().endswith("</svg>")
    [factor] = factor_rows(in_db)
    assert (factor.id, factor.type, factor.verified_at) == (body["factor_id"], "totp", None)
    assert stored_user(in_db).mfa_enabled is False


def test_an_unverified_factor_changes_nothing_at_login(client, alice):
    start_enrolment(client, alice["access_token"])

    response = login(client)

    assert response.status_code == 200
    assert "mfa_required" not in response.json
    assert claims(response.json["access_token"])["aal"] == "aal1"


def test_a_new_enrolment_replaces_the_unverified_one(client, alice, in_db):
    first = start_enrolment(client, alice["access_token"]).json
    second = start_enrolment(client, alice["access_token"]).json

    assert [f.id for f in factor_rows(in_db)] == [second["factor_id"]]
    stale = verify(client, alice["access_token"], first["factor_id"], totp(first["secret"]))
    assert_error(stale, 404, "factor_not_found")


def test_verification_turns_two_step_verification_on(client, alice, in_db, smtp):
    started = start_enrolment(client, alice["access_token"]).json
    sid = claims(alice["access_token"])["sid"]

    response = verify(client, alice["access_token"], started["factor_id"], totp(started["secret"]))

    assert response.status_code == 200, response.json
    body = response.json
    assert {"access_token", "refresh_token", "csrf_token", "recovery_codes"} <= set(body)
    codes = body["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
    access = claims(body["access_token"])
    assert (access["sid"], access["aal"]) == (sid, "aal2")
    assert access["amr"] == ["pwd", "otp", "mfa"]
    assert access["auth_time"] == int(LOGIN_TIME.timestamp())
    assert claims(body["refresh_token"])["sid"] == sid
    assert me(client, body["access_token"]).status_code == 200
    assert refresh(client, body["refresh_token"]).status_code == 200

    user = stored_user(in_db)
    assert user.mfa_enabled is True
    [factor] = factor_rows(in_db)
    assert factor.verified_at == LOGIN_TIME
    assert factor.last_used_step == int(LOGIN_TIME.timestamp()) // 30
    stored = recovery_rows(in_db)
    assert len(stored) == 10 and all(row.used_at is None for row in stored)
    assert not {row.code_hash for row in stored} & set(codes)
    session = session_row(in_db, sid)
    assert (session.aal, session.amr, session.authenticated_at) == (
        "aal2",
        "pwd otp mfa",
        LOGIN_TIME,
    )
    message = smtp.last("alice@example.com", ENABLED)
    assert "Every other session has been signed out" in text_part(message)


def test_verification_ends_every_other_session_and_older_token(client, auth, alice, in_db):
    other = auth.login().json

    enrolled = enrol(client, alice["access_token"])

    for stale in (other, alice):
        assert me(client, stale["access_token"]).status_code == 401
    assert_error(refresh(client, other["refresh_token"]), 401)
    # The verifying session's earlier refresh token was replaced by the new pair's.
    assert_error(refresh(client, alice["refresh_token"]), 401)
    rows = {row.id: row for row in session_rows(in_db)}
    assert rows[claims(other["access_token"])["sid"]].revoked_reason == "mfa_enabled"
    assert rows[claims(alice["access_token"])["sid"]].revoked_at is None
    assert me(client, enrolled["access_token"]).status_code == 200


@pytest.mark.parametrize("offset", [-2, 2, None])
def test_a_wrong_code_does_not_verify_the_enrolment(client, alice, in_db, offset):
    started = start_enrolment(client, alice["access_token"]).json
    code = "000000" if offset is None else totp(started["secret"], offset)
    if code == totp(started["secret"]):
        code = "999999"

    response = verify(client, alice["access_token"], started["factor_id"], code)

    assert_error(response, 400, "wrong_mfa_code")
    [factor] = factor_rows(in_db)
    assert factor.verified_at is None and factor.last_used_step is None
    assert stored_user(in_db).mfa_enabled is False
    assert recovery_rows(in_db) == []
    assert me(client, alice["access_token"]).status_code == 200


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "12 345", ""])
def test_verification_takes_six_digits(client, alice, code):
    started = start_enrolment(client, alice["access_token"]).json
    response = verify(client, alice["access_token"], started["factor_id"], code)
    assert_error(response, 422)


def test_a_verified_factor_cannot_be_verified_again(client, enrolled):
    response = verify(
        client, enrolled["access_token"], enrolled["factor_id"], totp(enrolled["secret"])
    )
    assert_error(response, 409, "factor_already_verified")


def test_nobody_verifies_someone_elses_factor(app, client, auth, alice, in_db):
    started = start_enrolment(client, alice["access_token"]).json
    bob = auth.signup_and_login("bob@example.com", "bob")

    response = verify(client, bob["access_token"], started["factor_id"], totp(started["secret"]))

    assert_error(response, 404, "factor_not_found")
    assert factor_rows(in_db)[0].verified_at is None


def test_a_second_factor_needs_aal2_and_keeps_the_recovery_codes_going(client, enrolled, in_db):
    aal2 = enrolled["access_token"]
    started = start_enrolment(client, aal2)
    assert started.status_code == 201

    response = verify(client, aal2, started.json["factor_id"], totp(started.json["secret"]))

    assert response.status_code == 200
    assert len(factor_rows(in_db)) == 2
    # A new set: the earlier codes stop working.
    assert len(recovery_rows(in_db)) == 10
    assert not set(response.json["recovery_codes"]) & set(enrolled["recovery_codes"])


# --- listing factors ----------------------------------------------------------------


def test_factors_lists_every_factor_and_the_codes_left(client, enrolled, clock):
    token = enrolled["access_token"]
    pending = start_enrolment(client, token).json
    assert challenge(client, token, recovery_code=enrolled["recovery_codes"][0]).status_code == 200

    response = client.get("/auth/mfa/factors", headers=bearer(token))

    assert response.status_code == 200
    assert response.json["recovery_codes_left"] == 9
    listed = response.json["factors"]
    assert [(f["id"], f["type"], f["verified"]) for f in listed] == [
        (enrolled["factor_id"], "totp", True),
        (pending["factor_id"], "totp", False),
    ]
    assert listed[0]["last_used_at"] == "2030-01-01T12:00:00+00:00"
    assert listed[1]["last_used_at"] is None
    assert all(set(f) == {"id", "type", "created_at", "last_used_at", "verified"} for f in listed)


def test_factors_of_an_account_without_two_step_verification(client, alice):
    response = client.get("/auth/mfa/factors", headers=bearer(alice["access_token"]))
    assert response.json == {"factors": [], "recovery_codes_left": 0}


# --- the secret at rest -------------------------------------------------------------


def test_the_secret_is_stored_sealed(enrolled, in_db):
    [factor] = factor_rows(in_db)
    secret = enrolled["secret"]
    assert factor.secret.startswith("v1.")
    for spelling in (secret, secret.lower(), secret.rstrip("=")):
        assert spelling not in factor.secret
    stored = in_db(
        lambda: db.session.execute(sa.text("SELECT secret FROM mfa_factors")).scalar_one()
    )
    assert secret not in stored


def test_a_secret_copied_into_another_row_does_not_open(app, client, auth, enrolled, in_db, clock):
    bob = auth.signup_and_login("bob@example.com", "bob")
    bob_factor = enrol(app.test_client(), bob["access_token"])
    clock.tick(STEP)

    def copy_alices_secret():
        alices = db.session.get(MfaFactor, enrolled["factor_id"]).secret
        db.session.execute(
            sa.update(MfaFactor)
            .where(MfaFactor.id == bob_factor["factor_id"])
            .values(secret=alices)
        )

    in_db(copy_alices_secret)

    for secret in (enrolled["secret"], bob_factor["secret"]):
        token = first_step(app.test_client(), "bob@example.com")
        response = second_step(app.test_client(), token, code=totp(secret))
        assert_error(response, 401, "invalid_mfa_code")
    # Alice's own row still opens.
    token = first_step(app.test_client())
    assert second_step(app.test_client(), token, code=totp(enrolled["secret"])).status_code == 200


# --- recovery codes -------------------------------------------------------------------


def test_new_recovery_codes_replace_the_old_ones(app, client, enrolled, in_db):
    response = client.post("/auth/mfa/recovery-codes", headers=bearer(enrolled["access_token"]))

    assert response.status_code == 200
    fresh = response.json["recovery_codes"]
    assert len(set(fresh)) == 10 and not set(fresh) & set(enrolled["recovery_codes"])
    assert len(recovery_rows(in_db)) == 10
    old = second_step(
        app.test_client(),
        first_step(app.test_client()),
        recovery_code=enrolled["recovery_codes"][0],
    )
    assert_error(old, 401, "invalid_mfa_code")
    new = second_step(app.test_client(), first_step(app.test_client()), recovery_code=fresh[0])
    assert new.status_code == 200


def test_no_recovery_codes_without_two_step_verification(client, alice, in_db):
    response = client.post("/auth/mfa/recovery-codes", headers=bearer(alice["access_token"]))
    assert_error(response, 409, "mfa_not_enabled")
    assert recovery_rows(in_db) == []


def test_a_recovery_code_works_once_and_sends_an_email(app, enrolled, in_db, smtp):
    code = enrolled["recovery_codes"][3]

    used = second_step(app.test_client(), first_step(app.test_client()), recovery_code=code)

    assert used.status_code == 200
    assert claims(used.json["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    assert sum(row.used_at is not None for row in recovery_rows(in_db)) == 1
    message = smtp.last("alice@example.com", RECOVERY_USED)
    assert "9 unused codes remain" in text_part(message)
    again = second_step(app.test_client(), first_step(app.test_client()), recovery_code=code)
    assert_error(again, 401, "invalid_mfa_code")
    assert len(smtp.to("alice@example.com", RECOVERY_USED)) == 1


@pytest.mark.parametrize(
    "spell", [str.upper, lambda c: c.replace("-", ""), lambda c: " ".join(c.split("-"))]
)
def test_a_recovery_code_may_be_typed_in_other_spellings(app, enrolled, spell):
    code = spell(enrolled["recovery_codes"][0])
    response = second_step(app.test_client(), first_step(app.test_client()), recovery_code=code)
    assert response.status_code == 200, response.json


def test_another_accounts_recovery_code_does_not_work(app, auth, enrolled):
    bob = auth.signup_and_login("bob@example.com", "bob")
    bobs = enrol(app.test_client(), bob["access_token"])

    response = second_step(
        app.test_client(), first_step(app.test_client()), recovery_code=bobs["recovery_codes"][0]
    )

    assert_error(response, 401, "invalid_mfa_code")


# --- step-up --------------------------------------------------------------------------

# Each change that needs aal2: (method, path, json body) and its success status.
STEP_UP_ACTIONS = {
    "change-password": (
        "put",
        "/auth/change-password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        200,
    ),
    "delete-account": ("delete", "/users/me", {"password": PASSWORD}, 204),
    "remove-factor": ("delete", "/auth/mfa/factors/{factor_id}", None, 204),
    "new-recovery-codes": ("post", "/auth/mfa/recovery-codes", None, 200),
    "enrol-another": ("post", "/auth/mfa/totp", None, 201),
    # No identity is linked: past the step-up, the unlink is a 404.
    "unlink-identity": ("delete", "/users/me/identities/google", None, 404),
}


def act(client, action: str, token: str, factor_id: str):
    method, path, body, _ = STEP_UP_ACTIONS[action]
    kwargs = {"json": body} if body is not None else {}
    return getattr(client, method)(
        path.format(factor_id=factor_id), headers=bearer(token), **kwargs
    )


@pytest.fixture
def aal1(app, enrolled):
    """A password-only session of Alice's, with two-step verification on."""
    return aal1_session(app)


@pytest.mark.parametrize("action", STEP_UP_ACTIONS)
def test_an_aal1_session_is_refused_what_needs_aal2(client, enrolled, aal1, in_db, action):
    before = (stored_user(in_db), factor_rows(in_db), recovery_rows(in_db))

    response = act(client, action, aal1["access_token"], enrolled["factor_id"])

    body = assert_error(response, 403, "mfa_required")
    assert "/auth/mfa/challenge" in body["message"]
    after = (stored_user(in_db), factor_rows(in_db), recovery_rows(in_db))
    assert [u.password_hash for u in (before[0], after[0])] == [before[0].password_hash] * 2
    assert [f.id for f in after[1]] == [f.id for f in before[1]]
    assert [r.code_hash for r in after[2]] == [r.code_hash for r in before[2]]


@pytest.mark.parametrize("action", STEP_UP_ACTIONS)
def test_a_step_up_opens_what_needs_aal2(client, enrolled, aal1, in_db, action):
    sid = claims(aal1["access_token"])["sid"]

    raised = challenge(client, aal1["access_token"], code=totp(enrolled["secret"]))

    assert raised.status_code == 200, raised.json
    access = claims(raised.json["access_token"])
    assert (access["sid"], access["aal"], access["amr"]) == (sid, "aal2", ["pwd", "otp", "mfa"])
    assert session_row(in_db, sid).aal == "aal2"
    response = act(client, action, raised.json["access_token"], enrolled["factor_id"])
    assert response.status_code == STEP_UP_ACTIONS[action][3], response.json


def test_a_step_up_with_a_recovery_code(client, enrolled, aal1, in_db, smtp):
    raised = challenge(client, aal1["access_token"], recovery_code=enrolled["recovery_codes"][0])

    assert raised.status_code == 200
    assert claims(raised.json["access_token"])["aal"] == "aal2"
    assert smtp.last("alice@example.com", RECOVERY_USED)
    refreshed = refresh(client, raised.json["refresh_token"])
    assert claims(refreshed.json["access_token"])["aal"] == "aal2"


@pytest.mark.parametrize("code", ["wrong", "replayed", "expired"])
def test_a_step_up_with_a_bad_code_is_refused(client, enrolled, aal1, in_db, clock, code):
    secret = enrolled["secret"]
    if code == "replayed":
        assert challenge(client, enrolled["access_token"], code=totp(secret)).status_code == 200
        sent = totp(secret)
    elif code == "expired":
        sent = totp(secret, -2)
    else:
        sent = "000000" if totp(secret) != "000000" else "111111"

    response = challenge(client, aal1["access_token"], code=sent)

    assert_error(response, 400, "wrong_mfa_code")
    assert claims(aal1["access_token"])["aal"] == "aal1"
    assert session_row(in_db, claims(aal1["access_token"])["sid"]).aal == "aal1"


def test_no_step_up_without_two_step_verification(client, alice):
    response = challenge(client, alice["access_token"], code="123456")
    assert_error(response, 409, "mfa_not_enabled")


@pytest.mark.parametrize(
    "body", [{}, {"code": "123456", "recovery_code": "abcd-efgh-ijkl-mnop"}, {"code": "12345"}]
)
def test_a_step_up_takes_exactly_one_code(client, enrolled, body):
    assert_error(challenge(client, enrolled["access_token"], **body), 422)


def test_accounts_without_two_step_verification_need_no_step_up(client, alice):
    response = act(client, "change-password", alice["access_token"], "none")
    assert response.status_code == 200
    assert claims(response.json["access_token"])["aal"] == "aal1"


def test_a_password_change_keeps_the_sessions_level(client, enrolled):
    response = act(client, "change-password", enrolled["access_token"], enrolled["factor_id"])

    assert response.status_code == 200
    access = claims(response.json["access_token"])
    assert access["aal"] == "aal2"
    assert access["amr"] == ["pwd", "otp", "mfa"]


# --- removing factors -----------------------------------------------------------------


def test_removing_the_last_factor_turns_two_step_verification_off(
    app, client, enrolled, in_db, smtp
):
    pending = first_step(app.test_client())

    response = client.delete(
        f"/auth/mfa/factors/{enrolled['factor_id']}", headers=bearer(enrolled["access_token"])
    )

    assert response.status_code == 204
    assert factor_rows(in_db) == [] and recovery_rows(in_db) == []
    assert challenge_rows(in_db) == []
    assert stored_user(in_db).mfa_enabled is False
    message = smtp.last("alice@example.com", DISABLED)
    assert "by an administrator" not in text_part(message)
    answer = login(app.test_client())
    assert answer.status_code == 200 and "access_token" in answer.json
    assert claims(answer.json["access_token"])["aal"] == "aal1"
    # The second step a login began before the removal is gone with it.
    assert_error(second_step(app.test_client(), pending, code=totp(enrolled["secret"])), 401)
    # The session that removed it keeps working.
    assert me(client, enrolled["access_token"]).status_code == 200


def test_removing_one_of_two_factors_keeps_two_step_verification_on(
    app, client, enrolled, in_db, smtp, clock
):
    token = enrolled["access_token"]
    started = start_enrolment(client, token).json
    second = verify(client, token, started["factor_id"], totp(started["secret"]))
    token = second.json["access_token"]
    clock.tick(STEP)

    response = client.delete(f"/auth/mfa/factors/{enrolled['factor_id']}", headers=bearer(token))

    assert response.status_code == 204
    assert [f.id for f in factor_rows(in_db)] == [started["factor_id"]]
    assert len(recovery_rows(in_db)) == 10
    assert stored_user(in_db).mfa_enabled is True
    assert smtp.to("alice@example.com", DISABLED) == []
    mfa_token = first_step(app.test_client())
    removed = second_step(app.test_client(), mfa_token, code=totp(enrolled["secret"]))
    assert_error(removed, 401, "invalid_mfa_code")
    kept = second_step(app.test_client(), mfa_token, code=totp(started["secret"]))
    assert kept.status_code == 200


def test_removing_an_unverified_factor_changes_nothing_else(client, alice, in_db, smtp):
    started = start_enrolment(client, alice["access_token"]).json

    response = client.delete(
        f"/auth/mfa/factors/{started['factor_id']}", headers=bearer(alice["access_token"])
    )

    assert response.status_code == 204
    assert factor_rows(in_db) == []
    assert smtp.to("alice@example.com", DISABLED) == []


@pytest.mark.parametrize("whose", ["bob", "unknown", "nul"])
def test_removing_someone_elses_factor_is_a_404(app, client, auth, enrolled, in_db, whose):
    bob = auth.signup_and_login("bob@example.com", "bob")
    factor_id = {
        "bob": enrolled["factor_id"],
        "unknown": "00000000-0000-0000-0000-000000000000",
        "nul": "a%00b",
    }[whose]

    response = client.delete(f"/auth/mfa/factors/{factor_id}", headers=bearer(bob["access_token"]))

    assert_error(response, 404, "factor_not_found")
    assert len(factor_rows(in_db)) == 1


# --- a superuser's reset --------------------------------------------------------------


def test_a_superuser_resets_two_step_verification(app, enrolled, superuser_headers, in_db, smtp):
    pending = first_step(app.test_client())
    user_id = stored_user(in_db).id

    response = app.test_client().delete(f"/users/{user_id}/mfa", headers=superuser_headers)

    assert response.status_code == 204
    assert factor_rows(in_db) == [] and recovery_rows(in_db) == [] and challenge_rows(in_db) == []
    assert stored_user(in_db).mfa_enabled is False
    assert "by an administrator" in text_part(smtp.last("alice@example.com", DISABLED))
    assert_error(second_step(app.test_client(), pending, code=totp(enrolled["secret"])), 401)
    assert "access_token" in login(app.test_client()).json


def test_resetting_an_account_without_two_step_verification(
    app, alice, superuser_headers, in_db, smtp
):
    user_id = stored_user(in_db).id

    response = app.test_client().delete(f"/users/{user_id}/mfa", headers=superuser_headers)

    assert response.status_code == 204
    assert smtp.to("alice@example.com", DISABLED) == []


@pytest.mark.parametrize("user_id", [999, 2**31, 2**63])
def test_resetting_an_unknown_user_is_a_404(app, alice, superuser_headers, user_id):
    response = app.test_client().delete(f"/users/{user_id}/mfa", headers=superuser_headers)
    assert_error(response, 404, "user_not_found")


def test_only_a_superuser_resets_two_step_verification(app, auth, enrolled, in_db):
    bob = auth.signup_and_login("bob@example.com", "bob")
    user_id = stored_user(in_db).id

    for headers in (bearer(bob["access_token"]), bearer(enrolled["access_token"]), {}):
        response = app.test_client().delete(f"/users/{user_id}/mfa", headers=headers)
        assert response.status_code in (401, 403)
        if headers:
            assert_error(response, 403, "forbidden")
    assert len(factor_rows(in_db)) == 1
    assert stored_user(in_db).mfa_enabled is True


def test_the_cli_resets_two_step_verification(app, runner, enrolled, in_db, smtp):
    result = runner.invoke(args=["users", "reset-mfa", "Alice@Example.com"])

    assert result.exit_code == 0, result.output
    assert result.output == (
        "Two-step verification of alice@example.com is off; its factors and codes are gone.\n"
    )
    assert factor_rows(in_db) == [] and recovery_rows(in_db) == []
    assert stored_user(in_db).mfa_enabled is False
    assert "by an administrator" in text_part(smtp.last("alice@example.com", DISABLED))
    assert "access_token" in login(app.test_client()).json


def test_the_cli_reset_of_an_account_without_two_step_verification(runner, alice, smtp):
    result = runner.invoke(args=["users", "reset-mfa", "alice@example.com"])

    assert result.exit_code == 0
    assert result.output == "alice@example.com had no two-step verification to turn off.\n"
    assert smtp.to("alice@example.com", DISABLED) == []


def test_the_cli_reset_of_an_unknown_email_fails(runner, alice):
    result = runner.invoke(args=["users", "reset-mfa", "nobody@example.com"])

    assert result.exit_code == 1
    assert result.output == "Error: No user with email 'nobody@example.com'.\n"
