"""The one commit point, and side effects that wait for it (docs/adr/1501).

Services change the request's session and return; they never commit. The request
commits at its end when its answer is a success (below 400) and rolls back otherwise
(``commit_or_roll_back``, an ``after_request`` hook); a CLI command commits explicitly.

Side effects (emails, later audit events) are queued with ``after_commit``: they run
once the transaction that holds their change commits, and a rollback drops them, so
nothing announces a change that did not happen. The queue lives in the session's
``info`` and follows SQLAlchemy's ``after_commit`` and ``after_rollback`` session
events; no savepoints are used, so a rollback always ends the whole transaction.

``commit_now`` is the deliberate exception, for the few security writes that must
persist even though the request then answers with an error (a reused refresh token's
revocation before its 401) or that are atomic only as a transaction of their own (a
rotation on SQLite, retried as a whole), and the audit event of a failure the request
answers with an error (auth_service.services.audit.record_failure, docs/adr/2401).
Nothing else calls it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from flask import Flask, Response, current_app

from auth_service.extensions import db

log = logging.getLogger(__name__)

# Session.info key of the side effects waiting for the commit.
PENDING = "auth_service.after_commit"


def after_commit(effect: Callable, *args) -> None:
    """Run ``effect(*args)`` once the session's current transaction commits; a rollback
    drops it. Whatever it reports must be read now: after the commit the objects are
    expired and no SQL can run."""
    session = db.session()
    if not session.in_transaction():
        # So that a rollback drops it even when nothing has been read or written yet.
        session.begin()
    session.info.setdefault(PENDING, []).append((effect, args))


def commit_now() -> None:
    """Commit the request's work so far as a unit of its own (module docstring: only for
    security writes that must outlive an error answer or that are atomic only alone)."""
    db.session.commit()


def _run_pending(session: sa.orm.Session) -> None:
    for effect, args in session.info.pop(PENDING, ()):
        try:
            effect(*args)
        except Exception:
            # The change is committed either way: one failed effect must not hide it.
            log.exception("a side effect after the commit failed")


def _drop_pending(session: sa.orm.Session) -> None:
    session.info.pop(PENDING, None)


def commit_or_roll_back(response: Response) -> Response:
    """after_request: commit the request's work when it succeeded, roll it back otherwise.

    A commit that fails answers as the same error raised in the view would (409, 503,
    500), and its side effects are dropped.
    """
    if not db.session.registry.has():
        return response  # the request never used the session
    if response.status_code >= 400:
        db.session.rollback()
        return response
    try:
        db.session.commit()
    except Exception as error:
        db.session.rollback()
        return current_app.make_response(current_app.handle_user_exception(error))
    return response


def init_app(app: Flask) -> None:
    """Tie side effects to the commit, and make the end of each request its commit point.

    Register last: after_request hooks run in reverse order, so every other hook (security
    headers, CORS, the request log) then sees the answer this one settles on.
    """
    for event, listener in (("after_commit", _run_pending), ("after_rollback", _drop_pending)):
        if not sa.event.contains(db.session, event, listener):
            sa.event.listen(db.session, event, listener)
    app.after_request(commit_or_roll_back)
