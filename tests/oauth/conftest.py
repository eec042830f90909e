"""Fixtures for the Google/GitHub login tests: real fake providers on 127.0.0.1 and an
app configured to use them (same test database as the rest of the suite)."""

from __future__ import annotations

import socket

import pytest

from auth_service import create_app
from auth_service.extensions import db
from config import TestingConfig
from fake_provider import FakeGitHub, FakeGoogle, Server, app_settings
from tests.mail.mail_helpers import serving_smtp


@pytest.fixture(scope="session")
def google():
    """The fake OpenID Connect provider standing in for Google."""
    provider = FakeGoogle()
    provider.server = Server(provider.app).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def github():
    """The fake GitHub (OAuth endpoints and REST API)."""
    provider = FakeGitHub()
    provider.server = Server(provider.app).start()
    yield provider
    provider.stop()


@pytest.fixture(autouse=True)
def reset_providers(google, github):
    """Every test starts with the default users and well-behaved providers."""
    google.reset()
    github.reset()
    yield
    google.release.set()
    github.release.set()


def oauth_config(google, github, **overrides) -> type[TestingConfig]:
    """TestingConfig with both providers enabled against the fakes, plus ``overrides``."""
    settings = {**app_settings(google, github), "OAUTH_HTTP_TIMEOUT": 10.0, **overrides}
    return type("OAuthTestConfig", (TestingConfig,), settings)


@pytest.fixture(scope="session")
def oauth_app(app, google, github):
    """The app with Google and GitHub enabled (``app`` first: it builds the schema)."""
    oauth_app = create_app(oauth_config(google, github))
    yield oauth_app
    with oauth_app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(oauth_app):
    """A browser on the OAuth-enabled app (replaces the suite's plain ``client`` here)."""
    return oauth_app.test_client()


@pytest.fixture
def smtp(oauth_app, monkeypatch):
    """A running SMTP server that the OAuth-enabled app sends to."""
    yield from serving_smtp(oauth_app, monkeypatch)


@pytest.fixture
def make_oauth_app(make_app, google, github):
    """Another OAuth-enabled app with some settings changed: ``make_oauth_app(FRONTEND_URL=...)``."""
    return lambda **overrides: make_app(oauth_config(google, github, **overrides))


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
