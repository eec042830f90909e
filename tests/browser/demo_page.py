"""The demo SPA (auth_service/demo/) as the browser tests drive it: a page object."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pyotp

try:
    from playwright.sync_api import expect
except ImportError:  # the playwright fixture reports it: a skip, or a failure in CI
    expect = None

REFRESH = "**/auth/refresh"
ARTIFACTS = Path(
    os.environ.get(
        "BROWSER_ARTIFACTS", Path(__file__).resolve().parents[2] / "instance" / "browser-artifacts"
    )
)


def screenshot(page, name: str) -> Path:
    """Save a screenshot of ``page`` as a test artifact (BROWSER_ARTIFACTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


class Demo:
    """One tab showing the demo at ``url``."""

    def __init__(self, page, url: str):
        self.page = page
        self.url = url

    def open(self) -> Demo:
        self.page.goto(self.url)
        return self

    @property
    def status(self):
        return self.page.locator("#status")

    def expect_signed_in(self, account: dict) -> None:
        expect(self.page.locator("#app-screen")).to_be_visible()
        expect(self.page.locator("#me")).to_contain_text(account["email"])
        expect(self.page.locator("#login-screen")).to_be_hidden()

    def expect_signed_out(self) -> None:
        expect(self.page.locator("#login-screen")).to_be_visible()
        expect(self.page.locator("#app-screen")).to_be_hidden()

    def log_in(self, account: dict) -> None:
        form = self.page.locator("#login-form")
        form.get_by_label("Email").fill(account["email"])
        form.get_by_label("Password").fill(account["password"])
        form.get_by_role("button", name="Log in").click()

    def sign_up(self, account: dict) -> None:
        form = self.page.locator("#signup-form")
        for label, key in (
            ("Full name", "full_name"),
            ("Username", "username"),
            ("Email", "email"),
            ("Password", "password"),
        ):
            form.get_by_label(label).fill(account[key])
        form.get_by_role("button", name="Create account").click()

    def enter_code(self, code: str) -> None:
        """The login's second step: a TOTP or recovery code."""
        form = self.page.locator("#second-step-form")
        form.get_by_label("Code").fill(code)
        form.get_by_role("button", name="Verify").click()

    def expect_status(self, text: str, kind: str) -> None:
        """The status line says ``text`` (a part of it) in the colour of ``kind``."""
        expect(self.status).to_contain_text(text)
        expect(self.status).to_have_class(kind)

    def click(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()

    def refresh_now(self) -> None:
        """Start a refresh as the page's timer would (without waiting for it)."""
        self.page.evaluate("() => { window.authDemo.refresh(); }")

    def cookie_names(self) -> str:
        """What the page's scripts can see of the cookies."""
        return self.page.evaluate("() => document.cookie")


class Authenticator:
    """An authenticator app holding ``secret``: each code for a later time step than the
    last (the server refuses a step twice), within the one step of skew it allows."""

    def __init__(self, secret: str):
        self.totp = pyotp.TOTP(secret)
        self.last_step = -1

    def code(self) -> str:
        while True:
            now = time.time()
            step = self.totp.timecode(datetime.fromtimestamp(now, UTC))
            left = self.totp.interval - now % self.totp.interval
            # The step before now is accepted only until the next step starts: not
            # when that is in a moment, as the code may arrive after it.
            candidates = [s for s in (step - 1, step, step + 1) if s > self.last_step]
            if left < 5 and candidates and candidates[0] == step - 1:
                candidates.pop(0)
            if candidates:
                self.last_step = candidates[0]
                return self.totp.generate_otp(self.last_step)
            # Three codes within the window already: the server's clock must move on.
            time.sleep(left + 0.1)
