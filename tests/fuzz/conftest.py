"""Fixtures for the Schemathesis run: the real app under gunicorn, on its own database.

The server is started once per session, the way it is deployed: ``flask db
upgrade`` then ``gunicorn wsgi:app`` with ``APP_ENV=production`` and fresh random
secrets, bound to 127.0.0.1 on a free port (tests/servers.py). Its database is never
the test suite's: a temporary SQLite file, or ``<TEST_DATABASE_URL's database>_fuzz``
created and dropped here when TEST_DATABASE_URL names PostgreSQL (so CI fuzzes
both backends).
"""

from __future__ import annotations

import secrets

import pytest
import requests
from sqlalchemy.engine import make_url

from config import random_encryption_key
from servers import AppServer, failing_test, flask, private_database, server_env, start_gunicorn

# The live server, for attaching its output to failure reports.
_RUNNING: list[AppServer] = []

SUPERUSER = {
    "email": "fuzz-admin@example.com",
    "username": "fuzz-admin",
    "password": "fuzz-admin-" + secrets.token_urlsafe(12),
}
USER = {
    "email": "fuzz-user@example.com",
    "username": "fuzz-user",
    "password": "fuzz-user-" + secrets.token_urlsafe(12),
    "full_name": "Fuzz User",
}


@pytest.fixture(autouse=True)
def clean_db():
    """Override tests/conftest.py: the fuzz run never touches the suite's database."""
    yield


@pytest.fixture(scope="session")
def fuzz_database_url(tmp_path_factory):
    """A database of the fuzz server's own, dropped afterwards."""
    with private_database("fuzz", tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="session")
def fuzz_server(fuzz_database_url, tmp_path_factory):
    """gunicorn serving wsgi:app on 127.0.0.1, migrated, with a superuser account."""
    env = server_env(
        fuzz_database_url,
        {
            "SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
            "JWT_SECRET_KEY": secrets.token_urlsafe(36),
            "KEY_ENCRYPTION_KEY": random_encryption_key(),
            "PUBLIC_BASE_URL": "https://auth.fuzz.test",
            # The run reads the live /openapi.json, which production serves only when asked.
            "API_DOCS_ENABLED": "true",
        },
    )
    with failing_test():
        flask(env, "db", "upgrade")
        flask(
            env,
            "users",
            "create-superuser",
            "--email",
            SUPERUSER["email"],
            "--username",
            SUPERUSER["username"],
            "--password",
            SUPERUSER["password"],
        )
        server = start_gunicorn(env, tmp_path_factory.mktemp("fuzz-log") / "gunicorn.log")
    server.database = make_url(fuzz_database_url).render_as_string(hide_password=True)
    _RUNNING.append(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fuzz_accounts(fuzz_server):
    """A user registered through the API, and the superuser's login through the API.

    Returns the credentials the fuzz run logs in with.
    """
    fuzz_server.signup(USER)
    for account in (USER, SUPERUSER):
        response = requests.post(
            f"{fuzz_server.base_url}/auth/login",
            timeout=10,
            json={"email": account["email"], "password": account["password"]},
        )
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
