"""Two-step verification under parallel requests: the database decides every race.

Two second steps presenting one mfa token and one code start one session, not two;
two enrolments started at once leave one unverified factor; one recovery code presented
twice at once is spent once; parallel wrong codes never exceed the token's five
attempts; removing the last two factors at once leaves the account's flag true to its
rows. Each race runs RACE_TRIES times with real parallel requests (on PostgreSQL, each
request on its own connection under READ COMMITTED).

The clock is not frozen here: the enrolment spends the current step's code, and the
races use the next step's, which the one-step skew window accepts.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from auth_service.persistence.models import Session
from helpers import bearer, row_count, stored_user
from mfa_helpers import (
    challenge_rows,
    enrol,
    factor_rows,
    first_step,
    recovery_rows,
    second_step,
    start_enrolment,
    totp,
    verify,
)

RACE_TRIES = 20


def in_parallel(count: int, request):
    """``request(index)`` from ``count`` threads released at once; the responses."""
    start = threading.Barrier(count)

    def run(index):
        start.wait(timeout=30)
        return request(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture
def enrolled_now(app, auth):
    """Alice signed up with an authenticator app verified (real clock)."""
    tokens = auth.signup_and_login()
    return enrol(app.test_client(), tokens["access_token"])


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_one_token_and_one_code_twice_at_once_start_one_session(app, enrolled_now, in_db, attempt):
    mfa_token = first_step(app.test_client())
    code = totp(enrolled_now["secret"], 1)
    sessions_before = row_count(in_db, Session)

    responses = in_parallel(2, lambda _: second_step(app.test_client(), mfa_token, code=code))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401], [r.json for r in responses]
    loser = next(r for r in responses if r.status_code == 401)
    assert loser.json["error"] in ("invalid_mfa_code", "invalid_mfa_token")
    assert row_count(in_db, Session) == sessions_before + 1
    assert challenge_rows(in_db)[0].used_at is not None


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_one_recovery_code_twice_at_once_is_spent_once(app, enrolled_now, in_db, attempt):
    tokens = [first_step(app.test_client()) for _ in range(2)]
    code = enrolled_now["recovery_codes"][0]
    sessions_before = row_count(in_db, Session)

    responses = in_parallel(
        2, lambda i: second_step(app.test_client(), tokens[i], recovery_code=code)
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401], [r.json for r in responses]
    assert next(r for r in responses if r.status_code == 401).json["error"] == "invalid_mfa_code"
    assert sum(row.used_at is not None for row in recovery_rows(in_db)) == 1
    assert row_count(in_db, Session) == sessions_before + 1


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_two_enrolments_started_at_once_leave_one_unverified_factor(app, auth, in_db, attempt):
    token = auth.signup_and_login()["access_token"]

    responses = in_parallel(2, lambda _: start_enrolment(app.test_client(), token))

    assert [r.status_code for r in responses] == [201, 201], [r.json for r in responses]
    [factor] = factor_rows(in_db)
    assert factor.verified_at is None
    started = {r.json["factor_id"]: r.json for r in responses}
    assert factor.id in started
    verified = verify(app.test_client(), token, factor.id, totp(started[factor.id]["secret"]))
    assert verified.status_code == 200, verified.json


@pytest.mark.parametrize("attempt", range(RACE_TRIES // 4))
def test_parallel_wrong_codes_never_exceed_five_attempts(app, enrolled_now, in_db, attempt):
    mfa_token = first_step(app.test_client())
    near = {totp(enrolled_now["secret"], offset) for offset in (-1, 0, 1, 2)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in near)

    responses = in_parallel(8, lambda _: second_step(app.test_client(), mfa_token, code=wrong))

    errors = sorted(r.json["error"] for r in responses)
    assert errors == ["invalid_mfa_code"] * 5 + ["invalid_mfa_token"] * 3, errors
    assert challenge_rows(in_db)[0].attempts == 5


@pytest.mark.parametrize("attempt", range(RACE_TRIES // 2))
def test_removing_the_last_two_factors_at_once_turns_two_step_verification_off(
    app, enrolled_now, in_db, attempt
):
    token = enrolled_now["access_token"]
    started = start_enrolment(app.test_client(), token).json
    second = verify(app.test_client(), token, started["factor_id"], totp(started["secret"], 1))
    token = second.json["access_token"]
    ids = [enrolled_now["factor_id"], started["factor_id"]]

    responses = in_parallel(
        2,
        lambda i: app.test_client().delete(f"/auth/mfa/factors/{ids[i]}", headers=bearer(token)),
    )

    assert [r.status_code for r in responses] == [204, 204], [r.json for r in responses]
    assert factor_rows(in_db) == [] and recovery_rows(in_db) == []
    assert stored_user(in_db).mfa_enabled is False
