"""Helpers of the audit tests: requests that each carry their own X-Request-ID and client
address, and the events each recorded."""

from __future__ import annotations

import itertools
import json

import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import AuditEvent

CLIENT_IP = "198.51.100.7"
_ids = itertools.count(1)


def all_events(in_db) -> list[AuditEvent]:
    return in_db(lambda: db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all())


class Trail:
    """``trail.call(client.post, "/auth/login", json=...)`` runs a request with a fresh
    request id from CLIENT_IP; ``trail.recorded()`` is what that request recorded."""

    def __init__(self, in_db):
        self.in_db = in_db
        self.request_id = None

    def call(self, send, path, ip=CLIENT_IP, headers=None, **kwargs):
        self.request_id = f"audit-test-{next(_ids)}"
        headers = {**(headers or {}), "X-Request-ID": self.request_id, "User-Agent": "AuditTest/1"}
        return send(path, headers=headers, environ_overrides={"REMOTE_ADDR": ip}, **kwargs)

    def recorded(self) -> list[AuditEvent]:
        rid = self.request_id
        return [event for event in all_events(self.in_db) if event.request_id == rid]

    def only(self, type, user_id, actor_id=None, **fields) -> AuditEvent:
        """The last request recorded exactly one event, of ``type``, about ``user_id``,
        by ``actor_id``, from CLIENT_IP, with its request id."""
        events = self.recorded()
        assert [event.type for event in events] == [type], [e.type for e in events]
        (event,) = events
        assert (event.user_id, event.actor_id) == (user_id, actor_id)
        assert (event.ip, event.user_agent) == (CLIENT_IP, "AuditTest/1")
        for name, value in fields.items():
            assert getattr(event, name) == value, name
        return event


def as_text(event: AuditEvent) -> str:
    """Every column of an event as one string, to search for secrets."""
    columns = {c.key: getattr(event, c.key) for c in AuditEvent.__table__.columns}
    return json.dumps(columns, default=str)
