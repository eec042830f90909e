"""The demo SPA at /demo in headless Chromium against gunicorn: password login, reload,
the HttpOnly cookie, silent refresh, two tabs, logout elsewhere, Google and GitHub."""

from __future__ import annotations

import re
from pathlib import Path

import jwt
import pytest
import requests
import sqlalchemy as sa

from auth_service.persistence.models import UTCDateTime
from config import Config, database_uri
from demo_page import REFRESH, Demo, expect, screenshot

REFRESH_COOKIE = "refresh_token_cookie"


def demo_url(server) -> str:
    return f"{server.base_url}/demo/"


def refresh_cookie_of(response) -> str:
    """The refresh token a /auth/refresh answer set."""
    match = re.search(rf"{REFRESH_COOKIE}=([^;]+)", response.header_value("set-cookie") or "")
    assert match, response.all_headers()
    return match.group(1)


def test_sign_up_log_out_and_log_in_with_a_password(page, api, new_account):
    account = new_account()
    demo = Demo(page, demo_url(api)).open()
    demo.expect_signed_out()
    screenshot(page, "01-login-screen")

    demo.sign_up(account)
    demo.expect_signed_in(account)
    expect(page.locator("#sessions li")).to_have_count(1)
    expect(page.locator("#sessions")).to_contain_text("this browser")
    screenshot(page, "02-signed-in")

    demo.click("Log out")
    demo.expect_signed_out()
    expect(demo.status).to_have_text("Logged out.")

    demo.log_in(account | {"password": "wrong password"})
    expect(demo.status).to_contain_text("Invalid email or password")
    demo.log_in(account)
    demo.expect_signed_in(account)


def test_reload_keeps_the_session_through_the_cookie(page, api, new_account):
    account = new_account()
    api.signup(account)
    demo = Demo(page, demo_url(api)).open()
    demo.log_in(account)
    demo.expect_signed_in(account)

    with page.expect_response("**/auth/csrf") as csrf, page.expect_response(REFRESH) as refresh:
        page.reload()
    demo.expect_signed_in(account)
    assert csrf.value.status == refresh.value.status == 200
    # Nothing about the session was kept anywhere a script could reach.
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0


def test_scripts_never_see_the_refresh_cookie(page, context, api, new_account):
    account = new_account()
    api.signup(account)
    demo = Demo(page, demo_url(api)).open()
    demo.log_in(account)
    demo.expect_signed_in(account)

    assert REFRESH_COOKIE not in demo.cookie_names()
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert cookies[REFRESH_COOKIE]["httpOnly"] is True
    assert cookies[REFRESH_COOKIE]["path"] == "/auth"
    assert cookies[REFRESH_COOKIE]["sameSite"] == "Lax"
    # The CSRF cookie is readable on purpose (same-site pages may use it).
    assert "csrf_refresh_token=" in demo.cookie_names()
    assert page.evaluate("() => typeof window.accessToken") == "undefined"


def test_an_expiring_access_token_is_refreshed_silently(page, short_lived_api, new_account):
    account = new_account()
    short_lived_api.signup(account)
    demo = Demo(page, demo_url(short_lived_api)).open()
    demo.log_in(account)
    demo.expect_signed_in(account)

    # expires_in is 3 s: the page refreshes on its own before then.
    with page.expect_response(REFRESH, timeout=10_000) as refresh:
        pass
    assert refresh.value.status == 200
    assert refresh.value.request.header_value("x-csrf-token")
    expect(page.locator("#refresh-count")).not_to_have_text("0")
    # The new access token works: the sessions list reloads with it.
    with page.expect_response("**/auth/active-sessions") as sessions:
        demo.click("Reload")
    assert sessions.value.status == 200
    demo.expect_signed_in(account)


def test_a_401_refreshes_once_and_retries(page, api, new_account):
    account = new_account()
    api.signup(account)
    demo = Demo(page, demo_url(api)).open()
    demo.log_in(account)
    demo.expect_signed_in(account)
    answered = []

    def expired_once(route):
        if answered:
            return route.continue_()
        answered.append(route.request.url)
        route.fulfill(
            status=401,
            content_type="application/json",
            body='{"code": 401, "status": "Unauthorized", "error": "token_expired", '
            '"message": "The token has expired."}',
        )

    page.route("**/auth/active-sessions", expired_once)
    with page.expect_response(REFRESH) as refresh:
        demo.click("Reload")
    assert refresh.value.status == 200
    expect(page.locator("#sessions li")).to_have_count(1)
    assert len(answered) == 1


# Races of two tabs' refreshes tried before the test gives up on seeing one.
RACE_ATTEMPTS = 5


def race_refreshes(context, first: Demo, second: Demo) -> tuple[str, str]:
    """Both tabs refresh at once; the refresh tokens their two answers set.

    Both requests are held until both are on their way. Chromium attaches the cookie
    when a continued request goes out, not when it was held (Playwright's network
    guide: Cookie is added by the network stack after the route handler), so the
    second may still leave after the first was answered and carry its new cookie:
    then the two answers are an ordinary rotation and its child, not a race.
    """
    held = []

    def hold(route):
        held.append(route)
        if len(held) == 2:
            for waiting in held:
                waiting.continue_()

    context.route(REFRESH, hold)
    with first.page.expect_response(REFRESH) as one, second.page.expect_response(REFRESH) as two:
        first.refresh_now()
        second.refresh_now()
    context.unroute(REFRESH, hold)
    assert one.value.status == two.value.status == 200
    return refresh_cookie_of(one.value), refresh_cookie_of(two.value)


def grace_gap(database_url: str, child: str) -> float:
    """Seconds between the spend of ``child``'s parent and the second tab's presentation
    of it: what the grace window (REFRESH_REUSE_GRACE_SECONDS) has to cover."""
    child_jti = jwt.decode(child, options={"verify_signature": False})["jti"]
    engine = sa.create_engine(database_uri(database_url))
    try:
        with engine.connect() as connection:
            spent_at, answered_at = connection.execute(
                sa.text(
                    "SELECT spent_at, grace_used_at FROM refresh_tokens WHERE replaced_by = :child"
                ).columns(spent_at=UTCDateTime(), grace_used_at=UTCDateTime()),
                {"child": child_jti},
            ).one()
    finally:
        engine.dispose()
    return (answered_at - spent_at).total_seconds()


def record_grace_gap(gap: float) -> None:
    """Keep the measurement beside the screenshots (instance/browser-artifacts/)."""
    artifacts = Path(__file__).resolve().parents[2] / "instance" / "browser-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    with (artifacts / "grace-gaps.txt").open("a") as log:
        log.write(f"{gap:.6f}\n")


def test_two_tabs_refreshing_at_once_both_stay_signed_in(
    context, api, new_account, browser_database_url
):
    account = new_account()
    api.signup(account)
    first = Demo(context.new_page(), demo_url(api)).open()
    first.log_in(account)
    first.expect_signed_in(account)
    second = Demo(context.new_page(), demo_url(api)).open()  # signed in by the shared cookie
    second.expect_signed_in(account)

    # Until the two requests really carry the same cookie: then the server's grace
    # window gives both the same new refresh token. Every attempt keeps both tabs in.
    for attempts in range(1, RACE_ATTEMPTS + 1):  # noqa: B007 (read after the loop)
        answers = race_refreshes(context, first, second)
        if answers[0] == answers[1]:
            break
    assert answers[0] == answers[1], f"no simultaneous refresh in {RACE_ATTEMPTS} attempts"
    gap = grace_gap(browser_database_url, answers[0])
    record_grace_gap(gap)
    assert 0 <= gap < Config.REFRESH_REUSE_GRACE_SECONDS
    for tab in (first, second):
        expect(tab.page.locator("#refresh-count")).to_have_text(str(attempts))
        with tab.page.expect_response("**/auth/active-sessions") as sessions:
            tab.click("Reload")
        assert sessions.value.status == 200
        tab.page.reload()
        tab.expect_signed_in(account)


def test_a_tab_serialises_its_own_refreshes(page, api, new_account):
    account = new_account()
    api.signup(account)
    demo = Demo(page, demo_url(api)).open()
    demo.log_in(account)
    demo.expect_signed_in(account)
    refreshes = []
    page.on(
        "request",
        lambda request: refreshes.append(request) if "/auth/refresh" in request.url else None,
    )

    results = page.evaluate("() => Promise.all([1, 2, 3].map(() => window.authDemo.refresh()))")

    assert results == [True, True, True]
    assert len(refreshes) == 1


def test_logout_in_one_tab_logs_the_other_out_at_its_next_refresh(
    context, short_lived_api, new_account
):
    account = new_account()
    short_lived_api.signup(account)
    # Timers run on Playwright's clock (in real time until fast-forwarded), and every
    # fetch the pages start is counted.
    context.clock.install()
    context.add_init_script("""{
        const fetch = window.fetch;
        window.fetchCount = 0;
        window.fetch = (...args) => { window.fetchCount++; return fetch(...args); };
    }""")
    first = Demo(context.new_page(), demo_url(short_lived_api)).open()
    first.log_in(account)
    first.expect_signed_in(account)
    second = Demo(context.new_page(), demo_url(short_lived_api)).open()
    second.expect_signed_in(account)

    first.click("Log out")
    first.expect_signed_out()
    # The other tab finds out at its next (timed) refresh: the login screen.
    with second.page.expect_response(
        lambda r: "/auth/refresh" in r.url and r.status == 401, timeout=10_000
    ):
        pass
    second.expect_signed_out()
    expect(second.status).to_have_text("Your session has ended. Please log in again.")
    screenshot(second.page, "03-logged-out-elsewhere")
    # No error loop: five minutes later it has not sent a single request more.
    fetches = second.page.evaluate("() => window.fetchCount")
    second.page.clock.fast_forward("05:00")
    assert second.page.evaluate("() => window.fetchCount") == fetches
    second.expect_signed_out()
    second.log_in(account)
    second.expect_signed_in(account)


@pytest.mark.parametrize(
    ("provider", "label", "email"),
    [
        ("google", "Sign in with Google", "victor@example.com"),
        ("github", "Sign in with GitHub", "octo@example.com"),
    ],
)
def test_provider_login_round_trip(page, api, providers, provider, label, email):
    for fake in providers:
        fake.reset()
    demo = Demo(page, demo_url(api)).open()

    with page.expect_response(f"**/auth/{provider}/callback*") as callback:
        page.get_by_role("link", name=label).click()
    # Back on the demo with the cookies set and no token in the URL; the page asks
    # /auth/csrf for the CSRF value and refreshes to get its access token.
    assert callback.value.status == 302
    page.wait_for_url(demo_url(api))
    demo.expect_signed_in({"email": email})
    assert "token" not in page.url
    expect(page.locator("#password-form")).to_be_hidden()  # no password on this account
    screenshot(page, f"04-signed-in-with-{provider}")
    page.reload()
    demo.expect_signed_in({"email": email})


def test_sessions_password_change_and_logout_everywhere(page, api, new_account):
    account = new_account()
    api.signup(account)
    elsewhere = requests.post(
        f"{api.base_url}/auth/login",
        timeout=10,
        json={"email": account["email"], "password": account["password"]},
    ).json()
    demo = Demo(page, demo_url(api)).open()
    demo.log_in(account)
    demo.expect_signed_in(account)
    sessions = page.locator("#sessions li")
    expect(sessions).to_have_count(2)

    sessions.filter(has_not_text="this browser").get_by_role("button", name="Revoke").click()
    expect(sessions).to_have_count(1)
    assert (
        requests.post(
            f"{api.base_url}/auth/refresh",
            timeout=10,
            json={"refresh_token": elsewhere["refresh_token"]},
        ).status_code
        == 401
    )

    form = page.locator("#password-form")
    form.get_by_label("Current password").fill(account["password"])
    form.get_by_label("New password").fill("an entirely new passphrase")
    form.get_by_role("button", name="Change password").click()
    expect(demo.status).to_contain_text("Password changed")
    page.reload()  # the new cookie (and CSRF value) carry the session on
    demo.expect_signed_in(account)

    demo.click("Log out everywhere")
    demo.expect_signed_out()
    expect(demo.status).to_have_text("Logged out of every session.")
    page.reload()
    demo.expect_signed_out()
