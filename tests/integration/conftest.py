"""Fixtures for the integration suite: the whole production stack, once per session.

The suite needs real binaries (initdb/pg_ctl, redis-server, nginx, openssl, runuser
when run as root). Locally it is skipped when one is missing; with CI set (.ci/run
sets it) a missing binary fails the run instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import pytest

from deploy_stack import CLIENT_ADDRESS, Stack, StackError, find_binary, local_session
from helpers import unavailable

REQUIRED_BINARIES = ["initdb", "pg_ctl", "redis-server", "nginx", "openssl"]
_counter = itertools.count(1)


def _missing_binaries() -> list[str]:
    missing = [name for name in REQUIRED_BINARIES if find_binary(name) is None]
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser")
    return missing


def _can_bind_client_address() -> bool:
    with socket.socket() as s:
        try:
            s.bind((CLIENT_ADDRESS, 0))
        except OSError:
            return False
    return True


@pytest.fixture(autouse=True)
def clean_db():
    """The suite's own database is not used here (overrides tests/conftest.py)."""
    yield


@pytest.fixture(scope="session")
def stack():
    """PostgreSQL, Redis, two gunicorn instances and two nginx, all on 127.0.0.1."""
    missing = _missing_binaries()
    if not _can_bind_client_address():
        missing.append(f"a loopback address {CLIENT_ADDRESS}")
    if missing:
        unavailable(f"integration suite needs {', '.join(missing)}", ".ci/run installs them")
    workdir = Path(tempfile.mkdtemp(prefix="auth_service-it-"))
    os.chmod(workdir, 0o755)  # postgres and nginx's workers run as other users when we are root
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so the teardown below still runs.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    running = None
    try:
        running = Stack(workdir)
        try:
            running.start()
        except StackError as error:
            pytest.fail(f"{error}\n{running.logs()}", pytrace=False)
        yield running
    finally:
        if running is not None:
            running.close()
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the stack's logs to a failing test's report."""
    report = yield
    stack = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("stack logs", stack.logs()))
    return report


@pytest.fixture
def http(stack):
    """A session that reaches nginx from CLIENT_ADDRESS and trusts the test certificate."""
    with local_session(CLIENT_ADDRESS, verify=str(stack.cert)) as session:
        yield session


@pytest.fixture
def direct():
    """A session for talking to one app instance directly (from 127.0.0.1)."""
    with local_session() as session:
        yield session


@pytest.fixture
def unique():
    """A fresh account name per call: unique("alice") -> "alice-7"."""
    return lambda base: f"{base}-{os.getpid()}-{next(_counter)}"
