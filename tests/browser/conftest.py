"""Fixtures for the browser tests: Debian's headless Chromium, driven by Playwright, against
the app under gunicorn on 127.0.0.1 (tests/servers.py).

Servers start once per session, the way the app is deployed (``flask db upgrade``,
then ``gunicorn wsgi:app``, ``APP_ENV=production``, settings from the environment),
each with the settings one kind of test needs, all on one database of their own: a
temporary SQLite file, or ``<TEST_DATABASE_URL's database>_browser`` on PostgreSQL.
Beside them run the fake Google and GitHub of tests/oauth and a static server that
serves the demo SPA from other origins (spa_host.py). Tests never share an account
(``new_account``).

Chromium is /usr/bin/chromium (``CHROMIUM`` to override); Playwright never downloads
a browser. Without it the tests are skipped, or fail when CI is set. Screenshots go to
``BROWSER_ARTIFACTS`` (default instance/browser-artifacts/), one per key screen and one
per page of a failed test.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import secrets
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "oauth") not in sys.path:  # the fake providers' module
    sys.path.append(str(ROOT / "tests" / "oauth"))
from demo_page import ARTIFACTS, screenshot  # noqa: E402
from fake_provider import FakeGitHub, FakeGoogle, Server, app_settings  # noqa: E402
from helpers import unavailable  # noqa: E402
from servers import (  # noqa: E402
    AppServer,
    failing_test,
    flask,
    private_database,
    server_env,
    start_gunicorn,
)
from spa_host import SpaHost  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As the machine's notes prescribe: no sandbox as root, and none of Chromium's own
# network traffic (it would only be refused here). launch() adds a fresh --user-data-dir.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_RUNNING: list[AppServer] = []


# --- the browser -----------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def chromium_available():
    """Checked before any server starts: Playwright and Debian's Chromium are here."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed", "make install-dev")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no Chromium at {CHROMIUM}", ".ci/run installs chromium")


@pytest.fixture(scope="session")
def playwright(chromium_available):
    """Playwright's driver (bundled with the Python package)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright):
    """Headless Chromium, shared by the tests; each test gets a fresh context."""
    for old in ARTIFACTS.glob("*.png"):  # the screenshots are this run's
        old.unlink()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile (cookies, storage) for one test; its tabs share cookies."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def third_party_cookies_context(playwright, tmp_path):
    """A profile that accepts third-party cookies, as a cross-site SPA needs.

    Playwright's contexts are incognito-like, and Chromium blocks third-party cookies
    there; a persistent profile whose preferences allow them stands for a browser
    with the default (Chrome's) setting.
    """
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(
        json.dumps({"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}})
    )
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS
    )
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Screenshot every open page of a failed test; attach the servers' output."""
    report = yield
    if report.failed and call.when == "call":
        for fixture in ("context", "third_party_cookies_context"):
            context = item.funcargs.get(fixture)
            for number, open_page in enumerate(context.pages if context else ()):
                name = re.sub(r"[^\w.-]+", "_", f"FAILED-{item.name}-{number}")
                try:
                    report.sections.append(("screenshot", str(screenshot(open_page, name))))
                except Exception as exc:  # a crashed page must not hide the failure
                    report.sections.append(("screenshot", f"failed: {exc!r}"))
        for server in _RUNNING:
            report.sections.append((f"server {server.base_url}", server.log()))
    return report


# --- accounts ----------------------------------------------------------------------------

_accounts = itertools.count(1)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def new_account():
    """Credentials no other test uses (the servers' database is shared by the session)."""

    def make() -> dict:
        number = next(_accounts)
        tag = f"{number}-{secrets.token_hex(3)}"
        return {
            "email": f"user{tag}@example.com",
            "username": f"user{tag}",
            "password": PASSWORD,
            "full_name": f"Browser User {number}",
        }

    return make


# --- the servers -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_db():
    """Override tests/conftest.py: the browser tests never touch the suite's database."""
    yield


# One pair for every server of the session: they share a database, like instances.
SECRETS = {
    "SECRET_KEY": secrets.token_urlsafe(36),
    "JWT_SECRET_KEY": secrets.token_urlsafe(36),
    "KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
}


def browser_env(database_url: str, settings: dict) -> dict:
    """A server's environment: /demo on, the session's secrets, the test's ``settings``."""
    return server_env(
        database_url,
        {
            **SECRETS,
            # Plain http on 127.0.0.1: cookies without Secure unless a test sets it.
            "JWT_COOKIE_SECURE": "false",
            "DEMO_ENABLED": "true",
            "PUBLIC_BASE_URL": "http://127.0.0.1",
            **settings,
        },
    )


@pytest.fixture(scope="session")
def browser_database_url(tmp_path_factory):
    """The servers' database, migrated; dropped afterwards (PostgreSQL)."""
    with private_database("browser", tmp_path_factory) as url:
        with failing_test():
            flask(browser_env(url, {}), "db", "upgrade")
        yield url


@pytest.fixture(scope="session")
def start_server(browser_database_url, tmp_path_factory):
    """``start_server(JWT_ACCESS_TOKEN_EXPIRES="3", ...)``: gunicorn with those settings."""
    started: list[AppServer] = []

    def start(**settings) -> AppServer:
        log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
        with failing_test():
            server = start_gunicorn(browser_env(browser_database_url, settings), log_path)
        started.append(server)
        _RUNNING.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        _RUNNING.remove(server)


@pytest.fixture
def verification_link():
    """``verification_link(server, user)``: the link a verification email to ``user`` (the
    signup's JSON) holds, made with the servers' secret as the email would be."""
    from types import SimpleNamespace

    from flask import Flask

    from auth_service.security import link_tokens

    def make(server: AppServer, user: dict) -> str:
        app = Flask(__name__)
        app.config.update(SECRET_KEY=SECRETS["SECRET_KEY"], PUBLIC_BASE_URL=server.base_url)
        with app.app_context():
            token = link_tokens.make_token(SimpleNamespace(**user), link_tokens.VERIFY_EMAIL)
            return link_tokens.verify_email_link(token)

    return make


@pytest.fixture
def reset_link(browser_database_url):
    """``reset_link(server, email)``: the demo's address for the link a reset email to
    ``email`` holds with FRONTEND_URL=<server>/demo, made with the servers' secret from
    the account's row (the token is bound to its password hash)."""
    from types import SimpleNamespace

    import sqlalchemy as sa
    from flask import Flask

    from auth_service.security import link_tokens
    from config import database_uri

    def make(server: AppServer, email: str) -> str:
        engine = sa.create_engine(database_uri(browser_database_url))
        try:
            with engine.connect() as connection:
                row = connection.execute(
                    sa.text("SELECT id, email, password_hash FROM users WHERE email = :email"),
                    {"email": email},
                ).one()
        finally:
            engine.dispose()
        app = Flask(__name__)
        app.config.update(SECRET_KEY=SECRETS["SECRET_KEY"])
        with app.app_context():
            token = link_tokens.make_token(
                SimpleNamespace(**row._mapping), link_tokens.RESET_PASSWORD
            )
        return f"{server.base_url}/demo/reset-password?token={token}"

    return make


# --- other parties: Google, GitHub, and pages on other origins ----------------------------


@pytest.fixture(scope="session")
def providers():
    """The fake Google and GitHub of tests/oauth, on 127.0.0.1."""
    google, github = FakeGoogle(), FakeGitHub()
    for fake in (google, github):
        fake.server = Server(fake.app).start()
        fake.reset()
    yield google, github
    google.stop()
    github.stop()


@pytest.fixture(scope="session")
def spa_host():
    host = SpaHost()
    yield host
    host.stop()


# --- the configurations the tests use ----------------------------------------------------


@pytest.fixture(scope="session")
def api(start_server, providers, spa_host) -> AppServer:
    """The main server: /demo on, Google and GitHub on, the SPA host's first origin allowed."""
    origin = f"http://127.0.0.1:{spa_host.port}"
    server = start_server(
        CORS_ORIGINS=origin, OAUTH_REDIRECT_ALLOWLIST=origin, **app_settings(*providers)
    )
    spa_host.mount("same-site", server.base_url)
    spa_host.mount("foreign", server.base_url)
    return server


@pytest.fixture(scope="session")
def short_lived_api(start_server) -> AppServer:
    """Access tokens live 3 seconds: the demo refreshes silently every ~2.4 s."""
    return start_server(JWT_ACCESS_TOKEN_EXPIRES="3")


@pytest.fixture(scope="session")
def cross_site_api(start_server, spa_host) -> AppServer:
    """For an SPA on another site (localhost vs 127.0.0.1): SameSite=None; Secure cookies."""
    server = start_server(
        CORS_ORIGINS=f"http://localhost:{spa_host.port}",
        JWT_COOKIE_SAMESITE="None",
        JWT_COOKIE_SECURE="true",
    )
    spa_host.mount("cross-site", server.base_url)
    return server
