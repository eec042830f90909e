"""Parallel claims of one username or one email: the unique indexes decide, and every
loser gets the 409 a sequential request would have got."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import User
from helpers import PASSWORD, assert_error, bearer, row_count

WORKERS = 8
TRIES = 20
CASINGS = ["Bob", "BOB", "bob", "bOb", "BoB", "boB", "BOb", "bOB"]
SPELLINGS = [
    "x@exämple.com",
    "x@xn--exmple-cua.com",
    "X@EXÄMPLE.COM",
    "x@XN--EXMPLE-CUA.com",
    " x@exämple.com",
    "ｘ@exämple.com",
    "X@Exämple.com",
    "x@exämple.com ",
]


def in_parallel(app, send) -> list:
    """``send(client, i)`` for i in range(WORKERS), each on its own client and thread,
    released together; the responses in order."""
    start = threading.Barrier(WORKERS)

    def run(i):
        client = app.test_client()
        start.wait(timeout=30)
        return send(client, i)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(run, range(WORKERS)))


def signup(client, email, username):
    return client.post(
        "/auth/signup", json={"email": email, "username": username, "password": PASSWORD}
    )


def assert_one_winner(responses, winner_status: int, error: str) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [winner_status] + [409] * (WORKERS - 1), statuses
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, error)


@pytest.mark.parametrize("attempt", range(TRIES))
def test_parallel_signups_for_one_username_in_any_case_make_one_account(app, in_db, attempt):
    responses = in_parallel(
        app, lambda client, i: signup(client, f"bob{i}@example.com", CASINGS[i])
    )

    assert_one_winner(responses, 201, "username_taken")
    assert row_count(in_db, User) == 1


@pytest.mark.parametrize("attempt", range(TRIES))
def test_parallel_signups_for_one_mailbox_in_any_spelling_make_one_account(app, in_db, attempt):
    responses = in_parallel(app, lambda client, i: signup(client, SPELLINGS[i], f"user{i}"))

    assert_one_winner(responses, 201, "email_taken")
    assert in_db(lambda: db.session.scalars(sa.select(User.email)).all()) == [
        "x@xn--exmple-cua.com"
    ]


@pytest.mark.parametrize("attempt", range(TRIES // 2))
def test_parallel_renames_to_one_username_in_any_case_leave_one_owner(app, auth, in_db, attempt):
    tokens = [
        auth.signup_and_login(f"user{i}@example.com", f"user{i}")["access_token"]
        for i in range(WORKERS)
    ]

    responses = in_parallel(
        app,
        lambda client, i: client.patch(
            "/users/me", json={"username": CASINGS[i]}, headers=bearer(tokens[i])
        ),
    )

    assert_one_winner(responses, 200, "username_taken")
    names = in_db(lambda: db.session.scalars(sa.select(User.username)).all())
    assert sum(name.lower() == "bob" for name in names) == 1
