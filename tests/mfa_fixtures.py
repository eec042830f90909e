"""Fixtures of the two-step verification tests (loaded by tests/conftest.py): a frozen
clock, a real SMTP server, Alice signed in, and Alice with an authenticator app.

Time is frozen (freezegun) so that every code is computed for a known 30-second step: a
code, once accepted, never works again for its factor, so a test moves the clock on to
the next step before it proves a second factor again.
"""

from __future__ import annotations

import pytest
from freezegun import freeze_time

from helpers import LOGIN_TIME
from mfa_helpers import STEP, enrol
from tests.mail.mail_helpers import serving_smtp


@pytest.fixture
def clock():
    """Time frozen at LOGIN_TIME; ``clock.tick(STEP)`` moves to the next TOTP step."""
    with freeze_time(LOGIN_TIME) as frozen:
        yield frozen


@pytest.fixture
def smtp(app, monkeypatch):
    """A running SMTP server that the app sends to (tests/mail and tests/oauth have their own)."""
    yield from serving_smtp(app, monkeypatch)


@pytest.fixture
def alice(clock, auth):
    """Alice signed up and logged in (with the clock frozen): the login JSON."""
    return auth.signup_and_login()


@pytest.fixture
def enrolled(client, alice, clock):
    """Alice with an authenticator app verified: ``{"secret", "factor_id",
    "recovery_codes", "access_token", "refresh_token", ...}`` (an aal2 session). The clock
    is then one step on, so the current code is fresh."""
    result = enrol(client, alice["access_token"])
    clock.tick(STEP)
    return result
