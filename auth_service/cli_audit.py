"""``flask audit verify|export|purge``: the audit trail's operator commands (docs/operations.md)."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta

import click
import sqlalchemy as sa

from auth_service.cli_failures import DatabaseCommandGroup
from auth_service.extensions import db
from auth_service.persistence import audit_log
from auth_service.persistence.models import AuditEvent, utcnow

audit_cli = DatabaseCommandGroup("audit", help="Verify, export and purge the audit trail.")

_AGE = re.compile(r"(\d+)([dh])")


class Moment(click.ParamType):
    """An ISO 8601 date or date and time; UTC unless it names its offset."""

    name = "datetime"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or date and time", param, ctx)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Age(click.ParamType):
    """A duration in days or hours: ``400d``, ``36h``."""

    name = "age"

    def convert(self, value, param, ctx):
        if isinstance(value, timedelta):
            return value
        match = _AGE.fullmatch(value.strip())
        if match is None:
            self.fail(f"{value!r} is not a number of days or hours (400d, 36h)", param, ctx)
        amount, unit = int(match[1]), match[2]
        return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


@audit_cli.command("verify")
def verify():
    """Check the hash chain; name the first row that is broken (exit 1)."""
    with db.engine.connect() as connection:
        broken = audit_log.first_break(connection)
        total = audit_log.count(connection)
    if broken is not None:
        raise click.ClickException(broken)
    click.echo(f"The audit chain is intact: {total} event(s).")


def _as_json(event: AuditEvent) -> str:
    return json.dumps(
        {
            "id": event.id,
            "occurred_at": event.occurred_at.isoformat(),
            "type": event.type,
            "user_id": event.user_id,
            "actor_id": event.actor_id,
            "session_id": event.session_id,
            "ip": event.ip,
            "user_agent": event.user_agent,
            "request_id": event.request_id,
            "details": event.details,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        },
        ensure_ascii=False,
    )


@audit_cli.command("export")
@click.option("--since", type=Moment(), required=True, help="From this moment (inclusive).")
@click.option("--until", type=Moment(), required=True, help="To this moment (exclusive).")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
def export(since, until, types):
    """Write the events between SINCE and UNTIL to stdout, one JSON object per line,
    oldest first, with their hashes (a copy elsewhere anchors the chain)."""
    if until <= since:
        raise click.UsageError("--until must be later than --since.")
    query = (
        sa.select(AuditEvent)
        .where(AuditEvent.occurred_at >= since, AuditEvent.occurred_at < until)
        .order_by(AuditEvent.id)
        .execution_options(yield_per=500)
    )
    if types:
        query = query.where(AuditEvent.type.in_(types))
    for event in db.session.scalars(query):
        sys.stdout.write(_as_json(event) + "\n")


@audit_cli.command("purge")
@click.option(
    "--older-than", "age", type=Age(), required=True, help="Keep events younger than this (400d)."
)
def purge(age):
    """Delete the events older than AGE, oldest first (the retention period); the only
    way rows leave audit_events (on PostgreSQL a trigger refuses any other)."""
    cutoff = utcnow() - age
    with db.engine.begin() as connection:
        deleted = audit_log.purge(connection, cutoff)
    click.echo(f"Deleted {deleted} audit event(s) from before {cutoff:%Y-%m-%d %H:%M} UTC.")
