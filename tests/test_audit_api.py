"""GET /users/me/security-events and GET /admin/audit-events: who may read what, and
cursor pagination that stays stable while events keep arriving."""

from __future__ import annotations

import threading

import pytest

from auth_service.extensions import db
from auth_service.services import audit
from helpers import WRONG_PASSWORD, assert_error, claims


def record(app, type, user_id, count=1):
    with app.app_context():
        for _ in range(count):
            audit.record(type, user_id)
        db.session.commit()


def user_id_of(headers) -> int:
    return int(claims(headers["Authorization"].split()[1])["sub"])


def test_a_user_reads_their_own_events_only(client, auth, alice_headers, superuser_headers):
    auth.login(password=WRONG_PASSWORD)
    alice = user_id_of(alice_headers)
    response = client.get("/users/me/security-events", headers=alice_headers)
    assert response.status_code == 200
    assert [e["type"] for e in response.json["events"]] == [
        "login_failed",
        "login_succeeded",
        "signup",
    ]
    assert response.json["next_cursor"] is None
    first = response.json["events"][0]
    assert set(first) == {
        "id",
        "type",
        "occurred_at",
        "ip",
        "user_agent",
        "by_administrator",
        "details",
    }
    root = client.get("/users/me/security-events", headers=superuser_headers).json["events"]
    assert alice not in {e.get("user_id") for e in root}
    assert [e["type"] for e in root] == ["login_succeeded", "signup"]


def test_rate_limits_and_other_accounts_events_are_not_shown(app, client, alice_headers):
    alice = user_id_of(alice_headers)
    record(app, "rate_limited", alice)
    record(app, "login_failed", alice + 1)
    types = [
        e["type"]
        for e in client.get("/users/me/security-events", headers=alice_headers).json["events"]
    ]
    assert types == ["login_succeeded", "signup"]


def test_an_action_of_a_superuser_is_marked(client, alice_headers, superuser_headers):
    alice = user_id_of(alice_headers)
    assert client.put(f"/users/{alice}/deactivate", headers=superuser_headers).status_code == 200
    assert client.put(f"/users/{alice}/activate", headers=superuser_headers).status_code == 200
    alice_headers = {
        "Authorization": "Bearer "
        + client.post(
            "/auth/login", json={"email": "alice@example.com", "password": "correct horse battery"}
        ).json["access_token"]
    }
    events = client.get("/users/me/security-events", headers=alice_headers).json["events"]
    marked = {e["type"]: e["by_administrator"] for e in events}
    assert marked["user_activated"] is True and marked["user_deactivated"] is True
    assert marked["login_succeeded"] is False


def test_the_lists_need_a_token_and_the_admin_list_a_superuser(client, alice_headers):
    assert_error(client.get("/users/me/security-events"), 401)
    assert_error(client.get("/admin/audit-events"), 401)
    assert_error(client.get("/admin/audit-events", headers=alice_headers), 403)


@pytest.mark.parametrize("cursor", ["abc", "0", "-1", "1" * 19, "1.5"])
def test_a_cursor_not_handed_out_is_refused(client, alice_headers, cursor):
    response = client.get(f"/users/me/security-events?cursor={cursor}", headers=alice_headers)
    assert_error(response, 422)


def test_admin_filters_by_account_type_and_time(app, client, alice_headers, superuser_headers):
    alice = user_id_of(alice_headers)
    everything = client.get("/admin/audit-events", headers=superuser_headers).json["events"]
    assert {e["type"] for e in everything} == {"signup", "login_succeeded"}
    assert set(everything[0]) >= {"user_id", "actor_id", "request_id", "hash", "prev_hash"}
    own = client.get(
        f"/admin/audit-events?user_id={alice}&type=signup", headers=superuser_headers
    ).json["events"]
    assert [(e["type"], e["user_id"]) for e in own] == [("signup", alice)]
    future = client.get(
        "/admin/audit-events?since=2999-01-01T00:00:00Z", headers=superuser_headers
    ).json["events"]
    assert future == []
    past = client.get(
        "/admin/audit-events?until=2000-01-01T00:00:00Z", headers=superuser_headers
    ).json["events"]
    assert past == []


def test_pages_stay_stable_while_events_arrive(app, client, alice_headers):
    """Pages are read while other threads keep recording: each event is seen once, in
    order, and the ones recorded meanwhile never shift a page."""
    alice = user_id_of(alice_headers)
    record(app, "login_failed", alice, count=9)
    before = {
        e["id"]
        for e in client.get("/users/me/security-events?limit=200", headers=alice_headers).json[
            "events"
        ]
    }
    stop = threading.Event()

    def keep_recording():
        while not stop.is_set():
            record(app, "login_failed", alice)

    writers = [threading.Thread(target=keep_recording) for _ in range(2)]
    for writer in writers:
        writer.start()
    seen, cursor = [], None
    try:
        while True:
            query = f"limit=3&cursor={cursor}" if cursor else "limit=3"
            page = client.get(f"/users/me/security-events?{query}", headers=alice_headers).json
            seen += [int(e["id"]) for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen))
    # Every event that existed before the first page is on some page.
    assert {int(i) for i in before} <= set(seen)
