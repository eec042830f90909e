"""The audit_events table as a hash chain: append under one lock, verify, purge the oldest.

Each row holds ``prev_hash``, the hash of the row before it (by id), and ``hash``, the
SHA-256 of ``prev_hash`` and the row's content. Changing, removing or reordering a row
breaks the chain at that row, which ``verify`` names.

Two transactions appending at once must not both read the same last hash (the chain
would fork), so an append first takes a lock the database holds until the commit: on
PostgreSQL a transaction-level advisory lock, on SQLite its write lock (taken by a
write, before the last hash is read). Appends run at the commit (services.audit), so
the lock is held only while the transaction commits (docs/adr/2401).

On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE of the table unless the
transaction has set ``auth_service.audit_purge`` to ``on``, which only ``purge`` does
(migration 0009).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from auth_service.persistence.models import AuditEvent

EVENTS = AuditEvent.__table__
# The hash before the first row ever appended.
GENESIS = "0" * 64
# pg_advisory_xact_lock's key: any constant no other lock of this database uses.
CHAIN_LOCK_KEY = 0x6175646974  # "audit"
# The setting the trigger of migration 0009 reads.
PURGE_SETTING = "auth_service.audit_purge"
# The columns a row's hash covers: everything but the id and the hashes.
CONTENT = (
    "occurred_at",
    "type",
    "user_id",
    "actor_id",
    "session_id",
    "ip",
    "user_agent",
    "request_id",
    "details",
)


def content_hash(prev_hash: str, row) -> str:
    """SHA-256 of ``prev_hash`` and the content of ``row`` (a mapping or an object), in a
    canonical JSON form that reads the same back from either database."""
    get = row.get if isinstance(row, dict) else lambda key: getattr(row, key)
    content = {key: get(key) for key in CONTENT}
    content["occurred_at"] = _timestamp(content["occurred_at"])
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{encoded}".encode()).hexdigest()


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def append(connection: sa.Connection, rows: list[dict]) -> None:
    """Insert ``rows`` (their content columns) at the end of the chain, in the
    connection's transaction, which holds the chain's lock until it ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_CHAIN)
    else:
        # A write that changes nothing takes SQLite's write lock (pysqlite begins the
        # transaction before it), so the read below sees the last committed row.
        connection.execute(_LOCK_SQLITE)
    prev = connection.scalar(_LAST_HASH) or GENESIS
    chained = []
    for row in rows:
        digest = content_hash(prev, row)
        chained.append({**row, "prev_hash": prev, "hash": digest})
        prev = digest
    connection.execute(_INSERT, chained)


# Built once: every login and every other audited change runs them.
_LOCK_CHAIN = sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK_KEY))
_LOCK_SQLITE = sa.delete(EVENTS).where(sa.false())
_LAST_HASH = sa.select(EVENTS.c.hash).order_by(EVENTS.c.id.desc()).limit(1)
_INSERT = sa.insert(EVENTS)


def first_break(connection: sa.Connection) -> str | None:
    """Walk the chain from its oldest row: None when every row is intact and follows the
    one before it, else a sentence naming the first row that is not.

    The oldest row's ``prev_hash`` is taken as given: a purge removes the rows before it.
    """
    previous = None
    for row in _in_order(connection):
        if previous is not None and row.prev_hash != previous.hash:
            return (
                f"audit event {row.id}: does not follow event {previous.id} "
                "(a row was removed, reordered or rewritten)"
            )
        if content_hash(row.prev_hash, row) != row.hash:
            return f"audit event {row.id}: its content does not match its hash (changed)"
        previous = row
    return None


def _in_order(connection: sa.Connection, batch: int = 1000) -> Iterator:
    """Every row by id, read in batches (keyset), so a long chain never sits in memory."""
    after = 0
    while True:
        rows = connection.execute(
            sa.select(EVENTS).where(EVENTS.c.id > after).order_by(EVENTS.c.id).limit(batch)
        ).all()
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].id


def count(connection: sa.Connection) -> int:
    """How many rows the chain holds."""
    return connection.scalar(sa.select(sa.func.count()).select_from(EVENTS))


def purge(connection: sa.Connection, before: datetime) -> int:
    """Delete the oldest rows, those before the first row at or after ``before``, in the
    connection's transaction; how many.

    By id, not by time: ``occurred_at`` is when the change happened and the id when it
    was committed, so a time cut could leave a gap in the middle of the chain. A row a
    little older than ``before`` may stay until the next purge.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.select(sa.func.set_config(PURGE_SETTING, "on", True))  # transaction-local
        )
    keep_from = connection.scalar(
        sa.select(sa.func.min(EVENTS.c.id)).where(EVENTS.c.occurred_at >= before)
    )
    condition = EVENTS.c.id < keep_from if keep_from is not None else sa.true()
    return connection.execute(sa.delete(EVENTS).where(condition)).rowcount
