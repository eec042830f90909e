"""Fixtures of the email tests: a real SMTP server, or none listening."""

from __future__ import annotations

import socket

import pytest

from auth_service import create_app
from auth_service.extensions import db
from auth_service.integrations import mail
from mail_helpers import STALL_LIMIT, serving_smtp, use_smtp


@pytest.fixture
def smtp(app, monkeypatch):
    """A running SMTP server that the app sends to."""
    yield from serving_smtp(app, monkeypatch)


@pytest.fixture
def closed_port(app, monkeypatch):
    """Point the app's mail at a port where nothing listens (the SMTP server is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    use_smtp(monkeypatch, app, port)
    yield port
    mail.wait_for_pending(app, timeout=STALL_LIMIT)


@pytest.fixture
def second_app():
    """Another app on the test database, built from a config class (closed after the test)."""
    built = []

    def make(config_class):
        built.append(create_app(config_class))
        return built[-1]

    yield make
    for other in built:
        mail.wait_for_pending(other, timeout=STALL_LIMIT)
        with other.app_context():
            db.engine.dispose()
