"""Profile the hot paths in process with pyinstrument: ``python bench/profile.py [me|refresh|login]``.

Runs against the ``bench`` database that bench/run.py leaves behind (production config,
random secrets), through Flask's test client, so the profile holds the app's own cost
and not gunicorn's or wrk's. Prints the call tree and the SQL statements of one request.
A login includes its argon2id verification (the bench users' password is bench.run's).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.update({"APP_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(48),
                   "JWT_SECRET_KEY": secrets.token_urlsafe(48), "RATELIMIT_ENABLED": "false",
                   "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL",
                                                  "postgresql://postgres@127.0.0.1:5432/bench"),
                   "LOG_LEVEL": "INFO", "MAIL_BACKEND": "console",
                   # As under gunicorn.conf.py: its access line is the request line.
                   "LOG_REQUESTS": "false"})

import logging  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from pyinstrument import Profiler  # noqa: E402

from auth_service import create_app, tokens  # noqa: E402
from auth_service.engines import autocommit_engine  # noqa: E402
from auth_service.extensions import db  # noqa: E402
from auth_service.models import User  # noqa: E402
from bench.run import PASSWORD  # noqa: E402


def main(path: str, count: int) -> None:
    app = create_app()
    logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # the request lines
    with app.test_request_context(headers={"User-Agent": "profile"}):
        user = db.session.scalars(sa.select(User).limit(1)).one()
        email = user.email
        pair = tokens.start_session(user)
        db.session.remove()
    client = app.test_client()
    state = {"refresh": pair.refresh_token}

    def one():
        if path == "me":
            response = client.get("/auth/me", headers={"Authorization": f"Bearer {pair.access_token}"})
        elif path == "login":
            response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
        else:
            response = client.post("/auth/refresh", json={"refresh_token": state["refresh"]})
            state["refresh"] = response.get_json()["refresh_token"]
        assert response.status_code == 200, response.get_data(as_text=True)

    for _ in range(50):
        one()
    statements = []
    with app.app_context():
        # The token checks and a rotation on PostgreSQL run on the autocommit engine.
        for engine in {db.engine, autocommit_engine()}:
            sa.event.listen(engine, "before_cursor_execute",
                            lambda *a: statements.append(a[2].split("\n")[0][:90]))
        one()
    print(f"SQL of one {path} request ({len(statements)}):", *statements, sep="\n  ")
    import time
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        one()
    print(f"{path}: {(time.perf_counter() - wall) / count * 1000:.3f} ms wall, "
          f"{(time.process_time() - cpu) / count * 1000:.3f} ms CPU per request (no profiler)")
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(count):
        one()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=os.environ.get("PROFILE_ALL") == "1"))
    from pyinstrument.renderers import ConsoleRenderer
    print(profiler.output(ConsoleRenderer(unicode=True, color=False, flat=True, time="percent_of_total"))[:6000])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "me", int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
