"""The other side of the browser tests: the app under gunicorn, its database, and the
demo SPA served from other origins. Plain helpers; the fixtures are in conftest.py."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy.engine import make_url

from fake_provider import CLIENT_ID, CLIENT_SECRET, Server

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO_DIR = ROOT / "auth_service" / "demo"
STARTUP_TIMEOUT = 30
LOG_TAIL = 20_000
# Only these come from the caller's environment; every setting is given below.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")
# One pair for every server of the session: they share a database, like instances.
SECRETS = {"SECRET_KEY": secrets.token_urlsafe(36), "JWT_SECRET_KEY": secrets.token_urlsafe(36)}


class ServerError(RuntimeError):
    """A server or its database could not be set up."""


@dataclass
class AppServer:
    """One gunicorn serving wsgi:app on 127.0.0.1."""

    base_url: str
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if len(text) <= LOG_TAIL else "...\n" + text[-LOG_TAIL:]

    def signup(self, account: dict) -> None:
        """Register ``account`` through the API (not through the page)."""
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
    """The environment of a server: production config, the test's ``settings`` on top."""
    env = {key: os.environ[key] for key in INHERITED if key in os.environ}
    env.update(
        APP_ENV="production",
        FLASK_APP="wsgi",
        DATABASE_URL=database_url,
        **SECRETS,
        # Plain http on 127.0.0.1: cookies without Secure unless a test sets it.
        JWT_COOKIE_SECURE="false",
        DEMO_ENABLED="true",
        # Every test logs in from 127.0.0.1; the limits have tests of their own.
        RATELIMIT_ENABLED="false",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="8",
        MAIL_BACKEND="console",
        PUBLIC_BASE_URL="http://127.0.0.1",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


# --- the database ------------------------------------------------------------------------

def postgres_url() -> str | None:
    """TEST_DATABASE_URL when it names PostgreSQL."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://", "postgresql+psycopg2://")) else None


def _pg_admin(url, statements: list) -> None:
    import psycopg2

    connection = psycopg2.connect(host=url.host, port=url.port, user=url.username,
                                  password=url.password, dbname=url.database)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def create_postgres_database(suite_url: str, suffix: str) -> tuple[str, callable]:
    """``<suite database>_<suffix>``, created afresh: its URL and a function dropping it."""
    from psycopg2 import sql

    admin = make_url(suite_url.replace("postgres://", "postgresql://", 1))
    name = f"{admin.database}_{suffix}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    _pg_admin(admin, [drop, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))])
    url = admin.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    return url, lambda: _pg_admin(admin, [drop])


def migrate(database_url: str) -> None:
    """``flask db upgrade``, as a deployment runs it."""
    result = subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT,
                            env=server_env(database_url, {}), capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise ServerError(f"flask db upgrade failed:\n{result.stdout}\n{result.stderr}")


# --- gunicorn ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict, log_path: Path) -> AppServer:
    """gunicorn on a free port of 127.0.0.1, once /healthz answers."""
    for _attempt in range(3):
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(BIN / "gunicorn"), "wsgi:app", "--bind", f"127.0.0.1:{port}",
                 "--workers", "2", "--timeout", "60", "--graceful-timeout", "5",
                 "--no-control-socket", "--access-logfile", os.devnull],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def provider_settings(google, github) -> dict:
    """The settings that point the app at the fake Google and GitHub."""
    return {
        "GOOGLE_CLIENT_ID": CLIENT_ID, "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_DISCOVERY_URL": google.discovery_url,
        "GITHUB_CLIENT_ID": CLIENT_ID, "GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "GITHUB_AUTHORIZE_URL": f"{github.base_url}/login/oauth/authorize",
        "GITHUB_TOKEN_URL": f"{github.base_url}/login/oauth/access_token",
        "GITHUB_API_URL": f"{github.base_url}/api",
    }


# --- the SPA on other origins ------------------------------------------------------------

class SpaHost:
    """The demo SPA served from other origins: ``/<name>/`` talks to the API of ``name``.

    The same three files as /demo, with the page's ``auth-api`` meta tag pointing at the
    API (what a frontend developer copying the demo would edit). Two ports, so that
    there are two origins on the site 127.0.0.1, and ``localhost`` for another site.
    """

    TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}

    def __init__(self):
        self.apis: dict[str, str] = {}
        self.servers = [Server(self.wsgi).start(), Server(self.wsgi).start()]
        self.port, self.other_port = [int(s.base_url.rsplit(":", 1)[1]) for s in self.servers]

    def wsgi(self, environ, start_response):
        name, _, file = environ["PATH_INFO"].lstrip("/").partition("/")
        file = file or "index.html"
        path = DEMO_DIR / file
        if name not in self.apis or "/" in file or not path.is_file():
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        body = path.read_bytes()
        if file == "index.html":
            body = body.replace(b'<meta name="auth-api" content="">',
                                f'<meta name="auth-api" content="{self.apis[name]}">'.encode())
        start_response("200 OK", [("Content-Type", self.TYPES[path.suffix[1:]]),
                                  ("Cache-Control", "no-store")])
        return [body]

    def mount(self, name: str, api: str) -> None:
        self.apis[name] = api

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
