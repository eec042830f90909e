"""The commit point (auth_service.persistence.transactions, docs/adr/1501): a request
commits when it answers below 400 and rolls back otherwise; side effects wait for the
commit and are dropped by a rollback."""

from __future__ import annotations

import pytest
from flask import redirect

from auth_service.extensions import db
from auth_service.persistence import transactions
from auth_service.persistence.models import User
from auth_service.services import accounts
from config import TestingConfig
from helpers import PASSWORD, row_count


@pytest.fixture
def probe_app(make_app):
    """An app with a view that creates an account and answers ``status``."""
    probe = make_app(TestingConfig)

    @probe.post("/probe/<int:status>")
    def create_then_answer(status):
        accounts.create_user("probe@example.com", "probe", PASSWORD)
        transactions.after_commit(probe.extensions.setdefault("effects", []).append, status)
        if status == 302:
            return redirect("/elsewhere")
        return {"created": True}, status

    return probe


@pytest.mark.parametrize(
    "status, kept",
    [(200, True), (201, True), (302, True), (400, False), (401, False), (409, False), (500, False)],
)
def test_a_request_keeps_its_changes_and_effects_only_when_it_succeeds(
    probe_app, in_db, status, kept
):
    response = probe_app.test_client().post(f"/probe/{status}")

    assert response.status_code == status
    assert row_count(in_db, User) == (1 if kept else 0)
    assert probe_app.extensions.get("effects", []) == ([status] if kept else [])


def test_an_effect_runs_once_after_the_commit(app):
    ran = []
    with app.app_context():
        transactions.after_commit(ran.append, "sent")
        db.session.flush()
        assert ran == []
        db.session.commit()
        assert ran == ["sent"]
        db.session.commit()
    assert ran == ["sent"]


def test_a_rollback_drops_the_effects_even_before_any_sql(app):
    ran = []
    with app.app_context():
        transactions.after_commit(ran.append, "sent")
        db.session.rollback()
        db.session.commit()
    assert ran == []


def test_a_failing_effect_is_logged_and_the_others_still_run(app, in_db, caplog):
    ran = []

    def broken():
        raise RuntimeError("mail queue full")

    with app.app_context():
        accounts.create_user("alice@example.com", "alice", PASSWORD)
        transactions.after_commit(broken)
        transactions.after_commit(ran.append, "second")
        db.session.commit()
    assert ran == ["second"]
    assert row_count(in_db, User) == 1
    assert "a side effect after the commit failed" in caplog.text
