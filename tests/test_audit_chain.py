"""The audit trail's table: events join their transaction, form a hash chain that
`flask audit verify` checks, are append-only on PostgreSQL, and are exported and purged
by the CLI."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence import audit_log
from auth_service.persistence.models import AuditEvent, utcnow
from auth_service.services import audit


def events(in_db) -> list[AuditEvent]:
    return in_db(lambda: db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all())


def record_committed(app, type="signup", user_id=1, **kwargs):
    with app.app_context():
        audit.record(type, user_id, **kwargs)
        db.session.commit()


def test_an_event_is_written_when_its_transaction_commits(app, in_db):
    record_committed(app, details={"provider": "github"})
    [event] = events(in_db)
    assert (event.type, event.user_id, event.details) == ("signup", 1, {"provider": "github"})
    assert event.prev_hash == audit_log.GENESIS
    assert event.hash == audit_log.content_hash(event.prev_hash, event)


def test_a_rolled_back_change_leaves_no_event(app, in_db):
    with app.app_context():
        audit.record("signup", 1)
        db.session.rollback()
        db.session.commit()
    assert events(in_db) == []


def test_a_failure_event_persists_while_the_rest_is_rolled_back(app, in_db):
    with app.app_context():
        audit.record("signup", 1)  # the request's own work: dropped with it
        audit.record_failure("login_failed", 2)
        db.session.rollback()
    assert [(e.type, e.user_id) for e in events(in_db)] == [("login_failed", 2)]


def test_each_row_chains_to_the_one_before(app, in_db):
    for user_id in (1, 2, 3):
        record_committed(app, user_id=user_id)
    rows = events(in_db)
    assert [row.prev_hash for row in rows[1:]] == [row.hash for row in rows[:-1]]


def test_verify_passes_an_intact_chain(app, in_db, runner):
    for user_id in (1, 2):
        record_committed(app, user_id=user_id)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "intact: 2 event(s)" in result.output


def tamper(app, statement):
    """Change audit_events as someone with the database's owner rights could: on
    PostgreSQL past the trigger, with the setting only a purge uses."""
    with app.app_context(), db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.text(statement))


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("UPDATE audit_events SET ip = '203.0.113.9' WHERE id = 2", "audit event 2: its content"),
        ("DELETE FROM audit_events WHERE id = 2", "audit event 3: does not follow event 1"),
        (
            'UPDATE audit_events SET details = \'{"provider": "google"}\' WHERE id = 3',
            "audit event 3: its content",
        ),
    ],
    ids=["changed", "removed", "details changed"],
)
def test_verify_names_the_first_broken_row(app, runner, statement, named):
    for user_id in (1, 2, 3, 4):
        record_committed(app, user_id=user_id, details={"provider": "github"})
    tamper(app, statement)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.output


def postgres_only(app):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the append-only trigger is PostgreSQL's")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET type = 'logout'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
def test_postgres_refuses_to_change_or_remove_events(app, in_db, statement):
    postgres_only(app)
    record_committed(app)
    with app.app_context(), pytest.raises(sa.exc.ProgrammingError, match="append-only"):
        with db.engine.begin() as connection:
            connection.execute(sa.text(statement))
    assert len(events(in_db)) == 1


def test_parallel_appends_never_fork_the_chain(app, in_db, runner):
    """Every thread commits its event at once: each row still follows exactly one other."""
    threads_count = 12
    start = threading.Barrier(threads_count)
    failures = []

    def append(user_id):
        try:
            with app.app_context():
                audit.record("signup", user_id)
                start.wait(timeout=10)
                db.session.commit()
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    rows = events(in_db)
    assert sorted(row.user_id for row in rows) == list(range(threads_count))
    assert len({row.prev_hash for row in rows}) == threads_count
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


def test_purge_deletes_the_oldest_and_the_rest_still_verifies(app, in_db, runner, clock):
    record_committed(app, user_id=1)
    clock.tick(timedelta(days=401))
    record_committed(app, user_id=2)
    record_committed(app, user_id=3)
    result = runner.invoke(args=["audit", "purge", "--older-than", "400d"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 audit event(s)" in result.output
    assert [e.user_id for e in events(in_db)] == [2, 3]
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


@pytest.mark.parametrize("age", ["400", "d", "-1d", "1w"])
def test_purge_refuses_an_age_it_cannot_read(runner, age):
    result = runner.invoke(args=["audit", "purge", "--older-than", age])
    assert result.exit_code == 2
    assert "is not a number of days or hours" in result.output


def test_export_writes_json_lines_of_the_window_and_types(app, runner):
    record_committed(app, "signup", 1)
    record_committed(app, "login_failed", None, details={"email_key": "k"})
    record_committed(app, "signup", 2)
    today = utcnow().date()
    window = ["--since", str(today - timedelta(days=1)), "--until", str(today + timedelta(days=1))]
    result = runner.invoke(args=["audit", "export", *window, "--type", "signup"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(line["type"], line["user_id"]) for line in lines] == [("signup", 1), ("signup", 2)]
    assert set(lines[0]) >= {"id", "occurred_at", "ip", "request_id", "hash", "prev_hash"}
    earlier = ["--since", "2000-01-01", "--until", "2000-01-02"]
    assert runner.invoke(args=["audit", "export", *earlier]).output == ""
