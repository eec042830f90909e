"""The app under a real gunicorn on 127.0.0.1, on a database of its own: what the fuzz
run (tests/fuzz) and the browser tests (tests/browser) test against.

Started the way the app is deployed: ``flask db upgrade``, then ``gunicorn wsgi:app``
with ``APP_ENV=production`` and every setting given here, never inherited from a
developer's shell (a .env file still applies). The database is never the test suite's:
a temporary SQLite file, or ``<TEST_DATABASE_URL's database>_<suffix>`` created and
dropped here when TEST_DATABASE_URL names PostgreSQL (so CI covers both backends).

Plain helpers raising ServerError; the fixtures are in the suites' conftest.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 30
LOG_TAIL = 20_000
# Only these come from the caller's environment; every setting is given below.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")


class ServerError(RuntimeError):
    """A server or its database could not be set up."""


@contextmanager
def failing_test():
    """A ServerError as the test's failure (its message has the log; no traceback)."""
    try:
        yield
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@dataclass
class AppServer:
    """One gunicorn serving wsgi:app on 127.0.0.1."""

    base_url: str
    log_path: Path
    process: subprocess.Popen
    database: str = ""  # for reports: the URL without its password

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if len(text) <= LOG_TAIL else "...\n" + text[-LOG_TAIL:]

    def signup(self, account: dict) -> None:
        """Register ``account`` through the API."""
        response = requests.post(f"{self.base_url}/auth/signup", json=account, timeout=10)
        assert response.status_code == 201, response.text

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_env(database_url: str, settings: dict) -> dict:
    """The environment of a server: production config, the caller's ``settings`` on top
    (the secrets, PUBLIC_BASE_URL and whatever the tests need)."""
    env = {key: os.environ[key] for key in INHERITED if key in os.environ}
    env.update(
        APP_ENV="production",
        FLASK_APP="wsgi",
        DATABASE_URL=database_url,
        # Every request comes from 127.0.0.1; the limits have tests of their own.
        RATELIMIT_ENABLED="false",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="8",
        # Verification and reset emails are rendered and written to the log.
        MAIL_BACKEND="console",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


# --- the database ------------------------------------------------------------------------


def postgres_url() -> str | None:
    """TEST_DATABASE_URL when it names PostgreSQL."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    return (
        url if url.startswith(("postgres://", "postgresql://", "postgresql+psycopg2://")) else None
    )


def _pg_admin(url, statements: list) -> None:
    import psycopg2

    connection = psycopg2.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


@contextmanager
def private_database(suffix: str, tmp_path_factory):
    """The URL of an empty database of the servers' own, dropped afterwards (PostgreSQL):
    ``<suffix>.db`` in a temporary directory, or ``<suite database>_<suffix>``."""
    pg = postgres_url()
    if pg is None:
        yield f"sqlite:///{tmp_path_factory.mktemp(f'{suffix}-db') / f'{suffix}.db'}"
        return

    from psycopg2 import sql

    # The suite's database is connected to only to create/drop the sibling database.
    admin = make_url(pg.replace("postgres://", "postgresql://", 1))
    name = f"{admin.database}_{suffix}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    _pg_admin(admin, [drop, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))])
    try:
        yield admin.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False
        )
    finally:
        _pg_admin(admin, [drop])


def flask(env: dict, *args: str) -> None:
    """``flask <args>`` in the server's environment (``flask db upgrade``: the migrations,
    as a deployment runs them)."""
    result = subprocess.run(
        [str(BIN / "flask"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise ServerError(
            f"flask {' '.join(args[:2])} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )


# --- gunicorn ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict, log_path: Path) -> AppServer:
    """gunicorn on a free port of 127.0.0.1, once /healthz answers. ``{port}`` in a
    setting's value becomes that port (an origin the app must name, as WEBAUTHN_ORIGINS)."""
    template = env
    for _attempt in range(3):
        port = free_port()
        env = {key: value.replace("{port}", str(port)) for key, value in template.items()}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "wsgi:app",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--timeout",
                    "60",
                    "--graceful-timeout",
                    "5",
                    # Its default path is per user, shared by concurrent servers.
                    "--no-control-socket",
                    # Errors and tracebacks only (gunicorn.conf.py, if any, logs every request).
                    "--access-logfile",
                    os.devnull,
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = AppServer(f"http://127.0.0.1:{port}", log_path, process)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    return server
            except requests.RequestException:
                pass
            time.sleep(0.1)
        server.stop()
        if "Address already in use" not in server.log():
            break
    raise ServerError(f"gunicorn did not become healthy:\n{server.log()}")
