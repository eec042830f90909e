"""A revocation never loses to a refresh in flight.

An attacker holding a stolen refresh token refreshes it as fast as one client can,
while the victim ends the session: reuse detection, logout, logout-all, revoking the
session from another device, deactivation, deletion. Whatever the interleaving, once
the victim's request has answered nothing of that session refreshes and its access
tokens are refused. Each race runs RACE_TRIES times with real parallel requests (on
PostgreSQL, each request on its own connection under READ COMMITTED).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import Session
from helpers import PASSWORD, bearer, claims, me, refresh

RACE_TRIES = 20
# The victim acts once the attacker is this many rotations into the loop.
ROTATIONS_BEFORE_VICTIM = 3


@dataclass
class Attacker:
    """Refreshes its latest token in a loop until refused or told to stop."""

    app: object
    refresh_token: str
    access_token: str = ""
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    rotated: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def run(self) -> None:
        client = self.app.test_client()
        while not self.stop.is_set():
            response = refresh(client, self.refresh_token)
            self.statuses.append(response.status_code)
            if response.status_code != 200:
                self.errors.append(response.json["error"])
                self.rotated.release()
                return
            self.refresh_token = response.json["refresh_token"]
            self.access_token = response.json["access_token"]
            self.rotated.release()


def race(app, stolen: str, victim_acts) -> tuple[Attacker, object]:
    """Start the attacker on ``stolen``, let it rotate a few times, run ``victim_acts()``
    while it keeps going, then stop it. Returns the attacker and the victim's response."""
    attacker = Attacker(app, stolen)
    thread = threading.Thread(target=attacker.run)
    thread.start()
    try:
        for _ in range(ROTATIONS_BEFORE_VICTIM):
            assert attacker.rotated.acquire(timeout=30), "the attacker never rotated"
        response = victim_acts()
    finally:
        attacker.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    return attacker, response


def assert_session_is_dead(app, in_db, attacker: Attacker, sid: str) -> None:
    """Nothing of session ``sid`` refreshes or authenticates any more."""
    client = app.test_client()
    assert 500 not in attacker.statuses, attacker.statuses
    late = refresh(client, attacker.refresh_token)
    assert late.status_code == 401, late.json
    if attacker.access_token:
        assert me(client, attacker.access_token).status_code == 401
    session = in_db(lambda: db.session.get(Session, sid))
    assert session is None or session.revoked_at is not None


@pytest.fixture
def victim(app, auth, in_db):
    """Alice signed up: ``victim()`` logs her in once more and returns the login JSON."""
    auth.signup()
    return lambda: auth.login().json


@pytest.fixture
def no_grace(app, monkeypatch):
    """Any second presentation of a spent token is reuse."""
    monkeypatch.setitem(app.config, "REFRESH_REUSE_GRACE_SECONDS", 0)


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_reuse_detection_beats_an_attacker_refreshing_in_a_loop(
    app, in_db, victim, no_grace, attempt
):
    stolen = victim()
    client = app.test_client()

    attacker, response = race(
        app, stolen["refresh_token"], lambda: refresh(client, stolen["refresh_token"])
    )

    assert response.status_code == 401
    assert response.json["error"] == "token_reused"
    assert_session_is_dead(app, in_db, attacker, sid_of(stolen))


def sid_of(tokens: dict) -> str:
    return claims(tokens["refresh_token"])["sid"]


# How the victim ends the stolen session, what that answers, and whether the victim's
# other device keeps its session: (client, stolen, other_device, admin_headers) -> response.
# "superuser-deactivation": the victim is a superuser, whose deactivation locks the
# active superusers first; that lock must not deadlock with the attacker's refreshes.
VICTIM_ACTIONS = {
    "logout": (
        lambda client, stolen, other, admin: client.post(
            "/auth/logout", headers=bearer(stolen["access_token"])
        ),
        200,
        True,
    ),
    "logout-all": (
        lambda client, stolen, other, admin: client.post(
            "/auth/logout-all", headers=bearer(other["access_token"])
        ),
        200,
        False,
    ),
    "session-revoked": (
        lambda client, stolen, other, admin: client.delete(
            f"/auth/active-sessions/{sid_of(stolen)}", headers=bearer(other["access_token"])
        ),
        204,
        True,
    ),
    "deactivation": (
        lambda client, stolen, other, admin: client.put(
            f"/users/{claims(stolen['refresh_token'])['sub']}/deactivate", headers=admin
        ),
        200,
        False,
    ),
}
VICTIM_ACTIONS["superuser-deactivation"] = VICTIM_ACTIONS["deactivation"]


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
@pytest.mark.parametrize("action", VICTIM_ACTIONS)
def test_ending_the_session_beats_an_attacker_refreshing_in_a_loop(
    app, in_db, victim, superuser_headers, make_superuser, action, attempt
):
    if action == "superuser-deactivation":
        make_superuser("alice@example.com")
    stolen, other_device = victim(), victim()
    end_session, status, other_device_survives = VICTIM_ACTIONS[action]
    client = app.test_client()

    attacker, response = race(
        app,
        stolen["refresh_token"],
        lambda: end_session(client, stolen, other_device, superuser_headers),
    )

    assert response.status_code == status
    assert_session_is_dead(app, in_db, attacker, sid_of(stolen))
    survived = refresh(client, other_device["refresh_token"]).status_code == 200
    assert survived is other_device_survives


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_a_refresh_racing_account_deletion_is_refused_without_a_reuse_alarm(
    app, in_db, victim, caplog, attempt
):
    stolen = victim()
    client = app.test_client()

    with caplog.at_level(logging.WARNING):
        attacker, response = race(
            app,
            stolen["refresh_token"],
            lambda: client.delete(
                "/users/me", headers=bearer(stolen["access_token"]), json={"password": PASSWORD}
            ),
        )

    assert response.status_code == 204
    assert_session_is_dead(app, in_db, attacker, sid_of(stolen))
    assert set(attacker.errors) <= {"token_revoked"}, attacker.errors
    late = refresh(app.test_client(), attacker.refresh_token)
    assert late.json["error"] == "token_revoked"
    assert "reuse" not in caplog.text


def test_sessions_table_has_one_row_per_login(app, in_db, victim):
    first, second = victim(), victim()

    rows = in_db(lambda: db.session.scalars(sa.select(Session).order_by(Session.created_at)).all())

    assert [row.id for row in rows] == [
        claims(first["refresh_token"])["sid"],
        claims(second["refresh_token"])["sid"],
    ]
    assert all(row.revoked_at is None and row.aal == "aal1" for row in rows)


@pytest.mark.parametrize("attempt", range(RACE_TRIES))
def test_a_grace_duplicate_racing_account_deletion_is_answered_cleanly(
    app, victim, caplog, attempt
):
    """The second tab presents the token the first just spent while the account is deleted:
    the duplicate gets the new pair (it came first) or 401 token_revoked, never a 500."""
    tokens = victim()
    first = refresh(app.test_client(), tokens["refresh_token"])
    start = threading.Barrier(2)
    answers = {}

    def duplicate():
        client = app.test_client()
        start.wait(timeout=30)
        answers["duplicate"] = refresh(client, tokens["refresh_token"])

    def delete():
        client = app.test_client()
        start.wait(timeout=30)
        answers["delete"] = client.delete(
            "/users/me", json={"password": PASSWORD}, headers=bearer(first.json["access_token"])
        )

    with caplog.at_level(logging.WARNING):
        threads = [threading.Thread(target=duplicate), threading.Thread(target=delete)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert answers["delete"].status_code == 204
    duplicate_answer = answers["duplicate"]
    assert duplicate_answer.status_code in (200, 401), duplicate_answer.get_data(as_text=True)
    if duplicate_answer.status_code == 401:
        assert duplicate_answer.json["error"] == "token_revoked"
    assert "reuse" not in caplog.text
