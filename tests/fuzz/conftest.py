"""Fixtures for the Schemathesis run: the real app under gunicorn, on its own database.

The server is started once per session, the way it is deployed: ``flask db
upgrade`` then ``gunicorn wsgi:app`` with ``APP_ENV=production`` and fresh random
secrets, bound to 127.0.0.1 on a free port. Its database is never the test
suite's: a temporary SQLite file, or ``<TEST_DATABASE_URL's database>_fuzz``
created and dropped here when TEST_DATABASE_URL names PostgreSQL (so CI fuzzes
both backends).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 30
LOG_TAIL = 20_000
# The live server, for attaching its output to failure reports.
_RUNNING: list[FuzzServer] = []

SUPERUSER = {"email": "fuzz-admin@example.com", "username": "fuzz-admin",
             "password": "fuzz-admin-" + secrets.token_urlsafe(12)}
USER = {"email": "fuzz-user@example.com", "username": "fuzz-user",
        "password": "fuzz-user-" + secrets.token_urlsafe(12), "full_name": "Fuzz User"}


@dataclass
class FuzzServer:
    base_url: str
    log_path: Path
    process: subprocess.Popen
    database: str = ""

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if len(text) <= LOG_TAIL else "...\n" + text[-LOG_TAIL:]


@pytest.fixture(autouse=True)
def clean_db():
    """Override tests/conftest.py: the fuzz run never touches the suite's database."""
    yield


def _postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://", "postgresql+psycopg2://")) else None


def _pg_admin(url, statements: list) -> None:
    import psycopg2

    connection = psycopg2.connect(
        host=url.host, port=url.port, user=url.username, password=url.password,
        dbname=url.database,
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture(scope="session")
def fuzz_database_url(tmp_path_factory):
    """A database of the fuzz server's own, dropped afterwards."""
    pg = _postgres_url()
    if pg is None:
        path = tmp_path_factory.mktemp("fuzz-db") / "fuzz.db"
        yield f"sqlite:///{path}"
        return

    from psycopg2 import sql

    url = make_url(pg.replace("postgres://", "postgresql://", 1))
    name = f"{url.database}_fuzz"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    # Connect to the suite's database only to create/drop the sibling database.
    _pg_admin(url, [drop, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))])
    yield url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    _pg_admin(url, [drop])


# Only these come from the caller's environment: the server's settings are all set
# below, never inherited from a developer's shell (a .env file still applies).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")


def _server_env(database_url: str) -> dict:
    env = {key: os.environ[key] for key in INHERITED if key in os.environ}
    env.update(
        APP_ENV="production",
        FLASK_APP="wsgi",
        SECRET_KEY=secrets.token_urlsafe(36),  # 48 characters
        JWT_SECRET_KEY=secrets.token_urlsafe(36),
        DATABASE_URL=database_url,
        RATELIMIT_ENABLED="false",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="8",
        # Verification and reset emails are rendered and written to the log.
        MAIL_BACKEND="console",
        PUBLIC_BASE_URL="https://auth.fuzz.test",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def _run(args: list[str], env: dict, what: str) -> None:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}",
                    pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_gunicorn(env: dict, log_path: Path) -> FuzzServer:
    for _attempt in range(3):
        port = _free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(BIN / "gunicorn"), "wsgi:app",
                 "--bind", f"127.0.0.1:{port}", "--workers", "2",
                 "--timeout", "60", "--graceful-timeout", "5",
                 # Its default path is per user, shared by concurrent servers.
                 "--no-control-socket",
                 # Errors and tracebacks only (gunicorn.conf.py, if any, logs every request).
                 "--access-logfile", os.devnull],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        server = FuzzServer(f"http://127.0.0.1:{port}", log_path, process)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    return server
            except requests.RequestException:
                pass
            time.sleep(0.1)
        _stop(process)
        if "Address already in use" not in server.log():
            break
    pytest.fail(f"gunicorn did not become healthy:\n{server.log()}", pytrace=False)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def fuzz_server(fuzz_database_url, tmp_path_factory):
    """gunicorn serving wsgi:app on 127.0.0.1, migrated, with a superuser account."""
    env = _server_env(fuzz_database_url)
    flask = str(BIN / "flask")
    _run([flask, "db", "upgrade"], env, "flask db upgrade")
    _run([flask, "users", "create-superuser", "--email", SUPERUSER["email"],
          "--username", SUPERUSER["username"], "--password", SUPERUSER["password"]],
         env, "flask users create-superuser")
    server = _start_gunicorn(env, tmp_path_factory.mktemp("fuzz-log") / "gunicorn.log")
    server.database = make_url(fuzz_database_url).render_as_string(hide_password=True)
    _RUNNING.append(server)
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="session")
def fuzz_accounts(fuzz_server):
    """A user registered through the API, and the superuser's login through the API.

    Returns the credentials the fuzz run logs in with.
    """
    response = requests.post(f"{fuzz_server.base_url}/auth/signup", json=USER, timeout=10)
    assert response.status_code == 201, response.text
    for account in (USER, SUPERUSER):
        response = requests.post(f"{fuzz_server.base_url}/auth/login", timeout=10,
                                 json={"email": account["email"], "password": account["password"]})
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "bearer"
    return {"user": USER, "superuser": SUPERUSER}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach gunicorn's output (tracebacks of 500s) to a failing fuzz test."""
    report = yield
    if report.failed and _RUNNING:
        report.sections.append(("gunicorn output", _RUNNING[-1].log()))
    return report
