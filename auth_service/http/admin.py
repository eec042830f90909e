"""/admin: what only a superuser reads (the audit trail)."""

from __future__ import annotations

from flask_smorest import Blueprint

from auth_service.http.audit_schemas import AuditEventPageSchema, AuditEventsQuerySchema
from auth_service.http.common import access_required
from auth_service.services import audit

blp = Blueprint("admin", __name__, url_prefix="/admin", description="Superuser administration")


@blp.route("/audit-events", methods=["GET"])
@access_required(blp, superuser=True)
@blp.arguments(AuditEventsQuerySchema(), location="query")
@blp.response(200, AuditEventPageSchema)
def audit_events(query):
    """The audit trail, newest first, filtered by account, type and time (superuser)."""
    return audit.page(
        user_id=query.get("user_id"),
        types=(query["type"],) if "type" in query else None,
        since=query.get("since"),
        until=query.get("until"),
        cursor=int(query["cursor"]) if "cursor" in query else None,
        limit=query["limit"],
    )
