"""Fixtures: one app per session, a clean database for every test.

The database is SQLite (instance/test.db) unless TEST_DATABASE_URL names
another one; CI runs the whole suite on both SQLite and PostgreSQL.
"""

from __future__ import annotations

import weakref

import pytest
import sqlalchemy as sa
from flask import appcontext_pushed
from flask_migrate import upgrade
from limits.storage import MemoryStorage

from auth_service import create_app
from auth_service.extensions import db
from auth_service.persistence import engines
from auth_service.security import limits as rate_limits
from auth_service.security import signing_keys
from config import TestingConfig
from helpers import PASSWORD, bearer

# The fixtures of the two-step verification tests (clock, smtp, alice, enrolled).
pytest_plugins = ("mfa_fixtures",)

# Every app a test has used: each keeps rate-limit counters of its own
# (auth_service.security.limits), which clean_db empties too.
_used_apps = weakref.WeakSet()
appcontext_pushed.connect(lambda sender, **_: _used_apps.add(sender), weak=False)


@pytest.fixture(scope="session")
def app():
    """The app under test, its schema built by the real migrations."""
    app = create_app(TestingConfig)
    with app.app_context():
        existing = sa.MetaData()
        existing.reflect(db.engine)
        existing.drop_all(db.engine)
        upgrade()
    return app


@pytest.fixture(autouse=True)
def clean_db(app):
    """Every test starts from empty tables."""
    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        if db.engine.dialect.name == "postgresql":
            # audit_events is append-only but for a purge (migration 0009).
            db.session.execute(sa.text("SET LOCAL auth_service.audit_purge = 'on'"))
            db.session.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables + ["sqlite_sequence"]:
                db.session.execute(sa.text(f"DELETE FROM {name}"))
        db.session.commit()
    for used in list(_used_apps):
        # Its signing keys were just deleted: the next request makes a first key again.
        if signing_keys.EXTENSION in used.extensions:
            signing_keys.forget(used)
        # Memory counters only: Redis-backed apps delete their own keys (tests/security).
        counters = used.extensions.get(rate_limits.EXTENSION)
        if counters is not None and isinstance(counters.storage, MemoryStorage):
            counters.storage.reset()
    yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_app():
    """Build more apps from config classes (a second instance, a proxy, other settings).

    They share the test database; their connection pools are closed after the test.
    """
    built = []

    def make(config_class):
        other = create_app(config_class)
        built.append(other)
        return other

    yield make
    for other in built:
        engines.dispose(other)


@pytest.fixture
def limits(app, monkeypatch):
    """Tighten rate limits for one test: ``limits(LOGIN_PER_IP="3 per minute")``.

    Limits are read from app.config at request time; TestingConfig keeps them at
    1000 per minute so that only the tests that mean to hit one do.
    """

    def tighten(**values):
        for name, value in values.items():
            key = f"RATELIMIT_{name}"
            assert key in app.config, key
            monkeypatch.setitem(app.config, key, value)

    return tighten


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def in_db(app):
    """Run ``fn`` in a fresh app context (its own session) and commit, as a CLI command
    does (services never commit): ``in_db(lambda: ...)``."""

    def run(fn):
        with app.app_context():
            # What ``fn`` returns stays readable once its context has ended.
            db.session().expire_on_commit = False
            result = fn()
            db.session.commit()
            return result

    return run


class AuthActions:
    """Sign up, log in and build headers in one line."""

    def __init__(self, client):
        self.client = client

    def signup(
        self,
        email="alice@example.com",
        username="alice",
        password=PASSWORD,
        full_name="Alice Example",
        **extra,
    ):
        body = {
            "email": email,
            "username": username,
            "password": password,
            "full_name": full_name,
            **extra,
        }
        return self.client.post("/auth/signup", json=body)

    def login(self, email="alice@example.com", password=PASSWORD):
        return self.client.post("/auth/login", json={"email": email, "password": password})

    def signup_and_login(self, email="alice@example.com", username="alice", password=PASSWORD):
        """Returns the login JSON: access_token, refresh_token, ..."""
        assert self.signup(email, username, password).status_code == 201
        response = self.login(email, password)
        assert response.status_code == 200, response.json
        return response.json

    bearer = staticmethod(bearer)


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def make_superuser(in_db):
    """Promote an existing account to superuser."""
    from auth_service.services.accounts import find_by_email

    def promote(email):
        def run():
            find_by_email(email).is_superuser = True
            db.session.commit()

        in_db(run)

    return promote


@pytest.fixture
def alice_tokens(auth):
    """Alice's login response: access_token, refresh_token, ..."""
    return auth.signup_and_login()


@pytest.fixture
def alice_headers(alice_tokens):
    """Headers of a logged-in ordinary user (alice@example.com)."""
    return bearer(alice_tokens["access_token"])


@pytest.fixture
def superuser_headers(app, make_superuser):
    """Headers of a logged-in superuser (root@example.com), logged in on a client of its own."""
    tokens = AuthActions(app.test_client()).signup_and_login("root@example.com", "root")
    make_superuser("root@example.com")
    return bearer(tokens["access_token"])
