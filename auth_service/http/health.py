"""Liveness and readiness probes."""

import sqlalchemy as sa
from flask_smorest import Blueprint

from auth_service.extensions import db
from auth_service.http.schemas import ErrorSchema, HealthSchema, LivenessSchema
from auth_service.version import __version__

blp = Blueprint("health", __name__, description="Probes for load balancers and orchestrators")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, LivenessSchema)
def healthz():
    """Liveness: the process answers (no database access), and its version."""
    return {"status": "ok", "version": __version__}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=ErrorSchema, description="Database unreachable")
def readyz():
    """Readiness: the database answers a ping (errors.py turns a failure into 503)."""
    db.session.execute(sa.text("SELECT 1"))
    db.session.rollback()
    return {"status": "ok"}
