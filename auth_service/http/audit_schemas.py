"""Marshmallow schemas of the audit trail's lists (GET /users/me/security-events and
GET /admin/audit-events)."""

import marshmallow as ma
from marshmallow import fields, validate

from auth_service.http.schemas import Text
from auth_service.services import audit

CURSOR = validate.Regexp(r"^[1-9][0-9]{0,17}$", error="Not a cursor this API handed out.")


class EventPageQuerySchema(ma.Schema):
    cursor = Text(
        validate=CURSOR,
        metadata={"description": "The ``next_cursor`` of the previous page (opaque)."},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class AuditEventsQuerySchema(EventPageQuerySchema):
    user_id = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1))
    type = Text(validate=validate.Length(min=1, max=40))
    since = fields.AwareDateTime(
        default_timezone=None, metadata={"description": "From this moment (inclusive)."}
    )
    until = fields.AwareDateTime(
        default_timezone=None, metadata={"description": "To this moment (exclusive)."}
    )


class SecurityEventSchema(ma.Schema):
    """One of the caller's own events."""

    id = fields.String()
    type = fields.String(metadata={"enum": list(audit.USER_VISIBLE)})
    occurred_at = fields.DateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    by_administrator = fields.Method(
        "_by_administrator",
        metadata={"type": "boolean", "description": "Done by a superuser to this account."},
    )
    details = fields.Dict(allow_none=True)

    def _by_administrator(self, event) -> bool:
        return event.actor_id is not None and event.actor_id != event.user_id


class AuditEventSchema(ma.Schema):
    """An event as the audit trail holds it (docs/audit.md)."""

    id = fields.String()
    occurred_at = fields.DateTime()
    type = fields.String()
    user_id = fields.Integer(allow_none=True)
    actor_id = fields.Integer(allow_none=True)
    session_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
    prev_hash = fields.String()
    hash = fields.String()


class SecurityEventPageSchema(ma.Schema):
    events = fields.List(fields.Nested(SecurityEventSchema))
    next_cursor = fields.String(allow_none=True)


class AuditEventPageSchema(ma.Schema):
    events = fields.List(fields.Nested(AuditEventSchema))
    next_cursor = fields.String(allow_none=True)
