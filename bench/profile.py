"""Profile the hot paths in process: ``python -m bench profile PATH [count]``.

Runs against the ``bench`` database that ``python -m bench run`` leaves behind
(production config, random secrets) and calls the WSGI application itself, as gunicorn
would, with the requests wrk sends: no server, no wrk and no test client (which costs a
request's worth of its own) in the numbers. Prints the SQL statements of one request, the
CPU time of the application per request, and pyinstrument's call tree (PROFILE_ALL=1: with
library frames). PATH is one of ``me``, ``jwks``, ``refresh``, ``login`` (with its
argon2id verification; the bench users' password is bench.run's), or a floor of
bench/floor_app.py, measured the same way: ``floor_select`` (``GET /select/<id>``),
``floor_verify`` (``GET /verified/<id>``), ``floor_jwks`` (``GET /jwks``) and
``floor_write`` (``POST /write/<id>``, with the refresh token).

The run's signing keys are sealed under its own random KEY_ENCRYPTION_KEY, so the profile
deletes them and the app makes a new first key, as a new install does.
"""

from __future__ import annotations

import json
import logging
import os
import time

import sqlalchemy as sa
from werkzeug.test import EnvironBuilder

from bench.run import PASSWORD, environment
from bench.settings import Settings


def environ(method: str, path: str, headers: dict | None = None, body: dict | None = None) -> dict:
    """The WSGI environ of one request as wrk sends it: no cookies, a new connection."""
    builder = EnvironBuilder(
        method=method,
        path=path,
        json=body,
        base_url="http://127.0.0.1:8000",
        headers={"User-Agent": "wrk", "Connection": "close", **(headers or {})},
    )
    try:
        return builder.get_environ()
    finally:
        builder.close()


def serve(wsgi, request: dict) -> bytes:
    """Run one request through ``wsgi``; its body, or AssertionError if it was no 200."""
    status = []
    answer = wsgi(request, lambda line, headers, exc_info=None: status.append(line))
    try:
        body = b"".join(answer)
    finally:
        getattr(answer, "close", lambda: None)()
    assert status[0].startswith("200"), (status[0], body)
    return body


def main(settings: Settings, path: str, count: int) -> None:
    """Print one request's SQL, the CPU per request, and the profile of ``count`` more."""
    # bench/run.py's servers' environment, set before the app (and config.py) is imported;
    # the access line is the request line, as under gunicorn.conf.py.
    os.environ.update({**environment(settings.database_url), "LOG_REQUESTS": "false"})
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    from auth_service import create_app
    from auth_service.extensions import db
    from auth_service.persistence.engines import autocommit_engine
    from auth_service.persistence.models import SigningKey, User
    from auth_service.services import sessions

    app = create_app()
    with app.app_context():
        db.session.execute(sa.delete(SigningKey))
        db.session.commit()
    logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # the request lines
    with app.test_request_context(headers={"User-Agent": "wrk"}):
        user = db.session.scalars(sa.select(User).order_by(User.id).limit(1)).one()
        user_id, email = user.id, user.email
        pair = sessions.start_session(user, ["pwd"])
        db.session.commit()  # services never commit: the caller does, as a CLI command does
        db.session.remove()
        engines = [db.engine, autocommit_engine()]
    wsgi = app
    if path.startswith("floor"):
        from bench import floor_app

        wsgi, engines = floor_app.app, [floor_app.engine]
    state = {"refresh": pair.refresh_token}
    bearer = {"Authorization": f"Bearer {pair.access_token}"}

    def next_request() -> dict:
        if path == "me":
            return environ("GET", "/auth/me", bearer)
        if path == "jwks":
            return environ("GET", "/.well-known/jwks.json")
        if path == "floor_select":
            return environ("GET", f"/select/{user_id}")
        if path == "floor_verify":
            return environ("GET", f"/verified/{user_id}", bearer)
        if path == "floor_jwks":
            return environ("GET", "/jwks")
        if path == "floor_write":  # bench_floor's rows are 1 to BENCH_CONNECTIONS
            return environ("POST", "/write/1", body={"refresh_token": pair.refresh_token})
        if path == "login":
            return environ("POST", "/auth/login", body={"email": email, "password": PASSWORD})
        return environ("POST", "/auth/refresh", body={"refresh_token": state["refresh"]})

    def one() -> float:
        """One request; the CPU time the application spent on it."""
        request = next_request()
        started = time.process_time()
        body = serve(wsgi, request)
        spent = time.process_time() - started
        if path == "refresh":
            state["refresh"] = json.loads(body)["refresh_token"]
        return spent

    for _ in range(50):
        one()
    statements = []
    with app.app_context():
        # The token checks and a rotation on PostgreSQL run on the autocommit engine.
        # A listener sends engines.Prepared's statements through a Connection, which
        # tells it: it is removed before the measured requests.
        listeners = [
            (
                engine,
                "before_cursor_execute",
                lambda *a: statements.append(a[2].split("\n")[0][:90]),
            )
            for engine in set(engines)
        ]
        for listener in listeners:
            sa.event.listen(*listener)
        one()
        for listener in listeners:
            sa.event.remove(*listener)
    print(f"SQL of one {path} request ({len(statements)}):", *statements, sep="\n  ")
    cpu = sum(one() for _ in range(count))
    print(
        f"{path}: {cpu / count * 1000:.3f} ms CPU per request in the application "
        f"(no profiler, {count} requests)"
    )
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(count):
        one()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=settings.profile_all))
    print(
        profiler.output(
            ConsoleRenderer(unicode=True, color=False, flat=True, time="percent_of_total")
        )[:6000]
    )
