"""Restarts and failures: gunicorn HUP, the loss of one instance, a database or Redis outage.

Each test leaves the stack as it found it (both instances and PostgreSQL up), even
when it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import psycopg2
import pytest
import requests

from deploy_stack import CLIENT_ADDRESS, get, local_session, wait_until

# A request refused for a database outage must come back at once, not after a timeout.
FAST = 3.0


def make_account(http, base: str, unique) -> dict:
    """Sign up and log in through nginx; returns the login JSON."""
    email, password = unique("resilient") + "@example.com", "Password123 resilient"
    signup = http.post(
        base + "/auth/signup",
        timeout=10,
        json={"email": email, "username": unique("resilient"), "password": password},
    )
    assert signup.status_code == 201, signup.text
    login = http.post(base + "/auth/login", json={"email": email, "password": password}, timeout=10)
    assert login.status_code == 200, login.text
    return {**login.json(), "email": email, "password": password}


class Traffic:
    """GET /auth/me through nginx in a background thread until stopped; records statuses."""

    def __init__(self, url: str, access_token: str):
        self.url, self.token = url, access_token
        self.statuses: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with local_session(CLIENT_ADDRESS) as session:
            while not self._stop.is_set():
                try:
                    response = session.get(
                        self.url + "/auth/me",
                        timeout=10,
                        headers={"Authorization": "Bearer " + self.token},
                    )
                    self.statuses.append(response.status_code)
                except requests.RequestException as error:
                    self.statuses.append(type(error).__name__)
                time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)


def test_hup_reload_keeps_requests_succeeding(http, stack, unique):
    tokens = make_account(http, stack.plain.url, unique)
    with Traffic(stack.plain.url, tokens["access_token"]) as traffic:
        time.sleep(0.3)
        for app in stack.apps:
            old = app.worker_pids()
            assert len(old) == 2
            os.kill(app.master_pid, signal.SIGHUP)
            # New workers boot, then the old ones finish their requests and exit.
            wait_until(
                lambda: len(app.worker_pids()) == 2 and not app.worker_pids() & old,
                30,
                f"workers of {app.name} replaced after HUP",
                log=app.log,
            )
        time.sleep(0.3)
    assert len(traffic.statuses) > 20
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert all(app.alive() for app in stack.apps)


def test_losing_one_instance_keeps_requests_succeeding(http, stack, unique):
    tokens = make_account(http, stack.plain.url, unique)
    lost = stack.apps[1]
    try:
        with Traffic(stack.plain.url, tokens["access_token"]) as traffic:
            time.sleep(0.3)
            lost.close(signal.SIGKILL)  # master and workers at once: a crashed host
            assert not lost.alive()
            # Connections the dying workers' backlog still took are reset (nginx retries a
            # GET, never a POST it already sent); once the port refuses, nothing is lost.
            wait_until(lambda: port_refuses(lost.port), 10, "the lost instance's port closed")
            # Writes too: nginx retries a POST on the other instance when the dead one
            # refuses the connection (the request was never sent).
            refresh_token = tokens["refresh_token"]
            for _ in range(6):
                login = http.post(
                    stack.plain.url + "/auth/login",
                    timeout=10,
                    json={"email": tokens["email"], "password": tokens["password"]},
                )
                assert login.status_code == 200
                refreshed = http.post(
                    stack.plain.url + "/auth/refresh",
                    timeout=10,
                    json={"refresh_token": refresh_token},
                )
                assert refreshed.status_code == 200
                refresh_token = refreshed.json()["refresh_token"]
            time.sleep(0.3)
        assert len(traffic.statuses) > 10
        assert set(traffic.statuses) == {200}, traffic.statuses
    finally:
        if not lost.alive():
            lost.start(run_migrations=False)
        stack.wait_balanced()
    assert get(lost.url + "/readyz").status_code == 200


def port_refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def assert_database_unavailable(response: requests.Response, elapsed: float) -> None:
    assert elapsed < FAST, f"took {elapsed:.1f}s"
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_database_outage_answers_503_fast_and_recovers_without_restart(http, stack, unique):
    base = stack.plain.url
    ended = make_account(http, base, unique)
    assert (
        http.post(
            base + "/auth/logout",
            timeout=10,
            headers={"Authorization": "Bearer " + ended["access_token"]},
            json={"refresh_token": ended["refresh_token"]},
        ).status_code
        == 200
    )
    live = make_account(http, base, unique)
    bearer = {"Authorization": "Bearer " + live["access_token"]}
    pids_before = {app.name: app.worker_pids() for app in stack.apps}

    stack.postgres.stop("fast")
    try:
        # Enough rounds to reach every worker of both instances (each has its own pool).
        for _ in range(4):
            assert_database_unavailable(
                *timed(lambda: http.get(base + "/auth/me", headers=bearer, timeout=10))
            )
            # Fails closed: neither a revoked nor a live refresh token is accepted.
            for token in (ended["refresh_token"], live["refresh_token"]):
                assert_database_unavailable(
                    *timed(
                        lambda: http.post(
                            base + "/auth/refresh", json={"refresh_token": token}, timeout=10
                        )
                    )
                )
            assert_database_unavailable(
                *timed(
                    lambda: http.post(
                        base + "/auth/login",
                        timeout=10,
                        json={"email": live["email"], "password": live["password"]},
                    )
                )
            )
            assert_database_unavailable(*timed(lambda: http.get(base + "/readyz", timeout=10)))
            # Liveness needs no database: orchestrators must not restart the instances.
            assert http.get(base + "/healthz", timeout=10).status_code == 200
    finally:
        stack.postgres.start()

    wait_until(
        lambda: all(http.get(base + "/readyz", timeout=10).status_code == 200 for _ in range(4)),
        30,
        "readiness after the database came back",
    )
    assert http.get(base + "/auth/me", headers=bearer, timeout=10).status_code == 200
    revoked = http.post(
        base + "/auth/refresh", json={"refresh_token": ended["refresh_token"]}, timeout=10
    )
    assert (revoked.status_code, revoked.json()["error"]) == (401, "token_revoked")
    assert (
        http.post(
            base + "/auth/refresh", json={"refresh_token": live["refresh_token"]}, timeout=10
        ).status_code
        == 200
    )
    # Recovered in place: the same workers, no restart.
    assert {app.name: app.worker_pids() for app in stack.apps} == pids_before


def test_redis_outage_refuses_limited_requests_and_recovers(http, stack, unique):
    """Rate limits that cannot count refuse (503) instead of counting in each worker's
    memory, which multiplied every limit by the number of workers (docs/adr/0301)."""
    base = stack.plain.url
    account = make_account(http, base, unique)
    bearer = {"Authorization": "Bearer " + account["access_token"]}
    credentials = {"email": account["email"], "password": account["password"]}

    stack.redis.close()
    try:
        # Enough rounds to reach every worker of both instances.
        for _ in range(4):
            refused, elapsed = timed(
                lambda: http.post(base + "/auth/login", json=credentials, timeout=10)
            )
            assert elapsed < FAST, f"took {elapsed:.1f}s"
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "rate_limit_unavailable"
            assert refused.headers["Retry-After"] == "5"
            # Requests without a limit are served as usual.
            assert http.get(base + "/auth/me", headers=bearer, timeout=10).status_code == 200
    finally:
        stack.redis.start()

    wait_until(
        lambda: all(
            http.post(base + "/auth/login", json=credentials, timeout=10).status_code == 200
            for _ in range(4)
        ),
        30,
        "logins after Redis came back",
    )


def test_connections_the_server_closed_cost_no_request(http, stack, unique):
    """Backends killed under idle pooled connections (as a restart or a DBA would): each
    worker's two pools notice on checkout, within the idle-ping threshold too."""
    base = stack.plain.url
    account = make_account(http, base, unique)
    bearer = {"Authorization": "Bearer " + account["access_token"]}
    for _ in range(8):  # every worker's pools hold connections now
        assert http.get(base + "/auth/me", headers=bearer, timeout=10).status_code == 200
    admin = psycopg2.connect(stack.postgres.url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)) "
            "FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        killed = cursor.fetchone()[0]
        assert killed
        # pg_terminate_backend only signals: a backend still exiting has not yet sent its
        # FATAL, and the app could not tell (nor could a pre-ping). Gone means it has.
        wait_until(lambda: not _still_running(cursor, killed), 10, "terminated backends")
    admin.close()
    refresh_token = account["refresh_token"]
    for _ in range(4):
        assert http.get(base + "/auth/me", headers=bearer, timeout=10).status_code == 200
        rotated = http.post(
            base + "/auth/refresh", json={"refresh_token": refresh_token}, timeout=10
        )
        assert rotated.status_code == 200
        refresh_token = rotated.json()["refresh_token"]
    assert (
        http.post(
            base + "/auth/logout", headers=bearer, timeout=10, json={"refresh_token": refresh_token}
        ).status_code
        == 200
    )


def _still_running(cursor, pids: list[int]) -> bool:
    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
    return cursor.fetchone()[0] > 0


@pytest.fixture(autouse=True)
def stack_is_whole(stack):
    """Every test here starts and ends with both instances and the database up."""
    assert all(app.alive() for app in stack.apps) and stack.postgres.is_running()
    yield
