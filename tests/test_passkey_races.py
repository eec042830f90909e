"""Passkeys under parallel requests: the database decides. One assertion presented twice
at once starts one session; one registration answer presented twice at once registers
one passkey; two assertions of one credential racing move its sign count once."""

from __future__ import annotations

import pytest

from auth_service.persistence.models import Session
from helpers import bearer, row_count
from passkey_authenticator import SoftAuthenticator
from passkey_helpers import (
    add_passkey,
    assertion,
    login_options,
    passkey_rows,
    registration_options,
)
from test_mfa_races import RACE_TRIES, in_parallel


@pytest.fixture
def passkey_owner(app, auth):
    """Alice with a passkey (real clock): (authenticator, the registration's answer)."""
    authenticator = SoftAuthenticator()
    tokens = auth.signup_and_login()
    return authenticator, add_passkey(app.test_client(), tokens["access_token"], authenticator)


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_one_assertion_twice_at_once_starts_one_session(app, passkey_owner, in_db, attempt):
    authenticator, _ = passkey_owner
    credential = assertion(app.test_client(), authenticator)
    sessions_before = row_count(in_db, Session)

    responses = in_parallel(
        2, lambda _: app.test_client().post("/auth/passkeys/login", json=credential)
    )

    assert sorted(r.status_code for r in responses) == [200, 401], [r.json for r in responses]
    assert row_count(in_db, Session) == sessions_before + 1


@pytest.mark.parametrize("attempt", range(RACE_TRIES // 2))
def test_one_registration_answer_twice_at_once_registers_one_passkey(app, auth, in_db, attempt):
    token = auth.signup_and_login()["access_token"]
    credential = SoftAuthenticator().create(registration_options(app.test_client(), token))

    responses = in_parallel(
        2,
        lambda _: app.test_client().post(
            "/auth/passkeys/register", headers=bearer(token), json=credential
        ),
    )

    assert sorted(r.status_code for r in responses) == [201, 400], [r.json for r in responses]
    assert len(passkey_rows(in_db)) == 1


@pytest.mark.parametrize("attempt", range(RACE_TRIES // 2))
def test_two_assertions_with_one_sign_count_at_once_count_once(app, passkey_owner, in_db, attempt):
    authenticator, _ = passkey_owner
    count = passkey_rows(in_db)[0].sign_count + 1
    # Two challenges, one count: what a cloned authenticator would send from two places.
    credentials = [
        authenticator.get(login_options(app.test_client()), sign_count=count) for _ in range(2)
    ]

    responses = in_parallel(
        2, lambda i: app.test_client().post("/auth/passkeys/login", json=credentials[i])
    )

    assert sorted(r.status_code for r in responses) == [200, 401], [r.json for r in responses]
    assert passkey_rows(in_db)[0].sign_count == count
