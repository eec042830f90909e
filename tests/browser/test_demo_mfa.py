"""Two-step verification in the demo SPA (issue 20), in Chromium against gunicorn: the
test is the authenticator app, computing codes from the secret the page shows."""

from __future__ import annotations

import re

import sqlalchemy as sa

from config import database_uri
from demo_page import Authenticator, Demo, expect, screenshot

RECOVERY_CODE = re.compile(r"^[a-z2-7]{4}(-[a-z2-7]{4}){3}$")


def demo_url(server) -> str:
    return f"{server.base_url}/demo/"


def enrol(page, demo: Demo) -> tuple[Authenticator, list[str]]:
    """Turn two-step verification on in the page: the app and the recovery codes."""
    card = page.locator("#mfa-card")
    expect(card.locator("#mfa-state")).to_contain_text("Off")
    demo.click("Set up an authenticator app")
    expect(card.locator("#qr-code svg")).to_be_visible()
    secret = card.locator("#totp-secret").inner_text()
    screenshot(page, "10-mfa-enrol-qr-code")
    app = Authenticator(secret)
    card.get_by_label("Code from the app").fill(app.code())
    demo.click("Turn on")
    demo.expect_status("Two-step verification is on", "success")
    codes = card.locator("#recovery-code-list li")
    expect(codes).to_have_count(10)
    recovery_codes = codes.all_inner_texts()
    assert all(RECOVERY_CODE.match(code) for code in recovery_codes), recovery_codes
    screenshot(page, "11-mfa-recovery-codes")
    demo.click("I have saved them")
    expect(codes).to_have_count(0)
    expect(card.locator("#mfa-state")).to_contain_text("On. 10 recovery codes left.")
    expect(page.locator("#me")).to_contain_text(re.compile(r"Two-step verification\s*on"))
    return app, recovery_codes


def lower_to_aal1(database_url: str, email: str) -> None:
    """Make the account's sessions ones that have not proven a second factor.

    No browser flow leaves such a session on an account with two-step verification on
    (enrolling raises the enrolling session and ends the others; every login asks for
    the code), so the test makes one, to meet the API's 403 mfa_required for real.
    """
    engine = sa.create_engine(database_uri(database_url))
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE sessions SET aal = 'aal1' "
                    "WHERE user_id = (SELECT id FROM users WHERE email = :email)"
                ),
                {"email": email},
            )
    finally:
        engine.dispose()


def test_enrol_log_in_with_codes_step_up_and_remove_the_factor(
    page, api, new_account, browser_database_url
):
    account = new_account()
    demo = Demo(page, demo_url(api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)
    app, recovery_codes = enrol(page, demo)

    # Password, then a code from the app.
    demo.click("Log out")
    demo.expect_signed_out()
    with page.expect_response("**/auth/login") as login:
        demo.log_in(account)
    assert login.value.json()["mfa_required"] is True
    expect(page.locator("#second-step-screen")).to_be_visible()
    demo.expect_status("One more step", "info")
    screenshot(page, "12-mfa-second-step")
    demo.enter_code("000000" if app.totp.now() != "000000" else "111111")
    demo.expect_status("The code is wrong", "error")
    with page.expect_request("**/auth/login/mfa") as second_step:
        demo.enter_code(app.code())
    assert "mfa_token" in second_step.value.post_data_json  # the token of the login's answer
    demo.expect_signed_in(account)

    # Password, then a reload: the password step set no cookie, so the mfa token lived
    # in the page only and the step starts over (the cookie path is the Google login's,
    # below). Then a recovery code.
    demo.click("Log out")
    demo.log_in(account)
    expect(page.locator("#second-step-screen")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/auth/login/mfa")) as pending:
        page.reload()
    assert pending.value.request.method == "GET" and pending.value.status == 401
    expect(page.locator("#second-step-screen")).to_be_hidden()
    demo.log_in(account)
    with page.expect_request("**/auth/login/mfa") as second_step:
        demo.enter_code(recovery_codes[0])
    assert "mfa_token" in second_step.value.post_data_json
    demo.expect_signed_in(account)
    expect(page.locator("#mfa-state")).to_contain_text("9 recovery codes left")

    # The same recovery code a second time: refused; another one works.
    demo.click("Log out")
    demo.log_in(account)
    demo.enter_code(recovery_codes[0])
    demo.expect_status("The code is wrong", "error")
    demo.enter_code(recovery_codes[1].upper().replace("-", " "))  # as a user may type it
    demo.expect_signed_in(account)

    # New recovery codes: the old ones stop working.
    demo.click("New recovery codes")
    expect(page.locator("#recovery-code-list li")).to_have_count(10)
    assert recovery_codes[2] not in page.locator("#recovery-code-list").inner_text()
    demo.expect_status("New recovery codes", "success")
    demo.click("I have saved them")

    # Step-up: removing the factor from a session that has not proven a code asks for one.
    lower_to_aal1(browser_database_url, account["email"])
    assert page.evaluate("() => window.authDemo.refresh()") is True  # a token saying aal1
    factor = page.locator("#factors li")
    expect(factor).to_have_count(1)
    with page.expect_response(lambda r: "/auth/mfa/factors/" in r.url) as refused:
        factor.get_by_role("button", name="Remove").click()
    assert refused.value.status == 403 and refused.value.json()["error"] == "mfa_required"
    dialog = page.locator("#step-up")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Code").fill("000000" if app.totp.now() != "000000" else "111111")
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.locator("#step-up-error")).to_contain_text("The code is wrong")
    screenshot(page, "13-mfa-step-up")
    dialog.get_by_label("Code").fill(app.code())
    with page.expect_response(
        lambda r: "/auth/mfa/factors/" in r.url and r.request.method == "DELETE" and r.ok
    ) as removed:
        dialog.get_by_role("button", name="Confirm").click()
    assert removed.value.status == 204
    expect(dialog).to_be_hidden()
    demo.expect_status("The authenticator app was removed", "success")
    expect(page.locator("#mfa-state")).to_contain_text("Off")
    expect(factor).to_have_count(0)
    screenshot(page, "14-mfa-off")

    # Off again: the password alone signs in.
    demo.click("Log out")
    demo.log_in(account)
    demo.expect_signed_in(account)


def test_cancelling_the_step_up_leaves_things_as_they_were(
    page, api, new_account, browser_database_url
):
    account = new_account()
    demo = Demo(page, demo_url(api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)
    enrol(page, demo)
    lower_to_aal1(browser_database_url, account["email"])
    assert page.evaluate("() => window.authDemo.refresh()") is True

    page.locator("#factors li").get_by_role("button", name="Remove").click()
    expect(page.locator("#step-up")).to_be_visible()
    page.locator("#step-up").get_by_role("button", name="Cancel").click()

    expect(page.locator("#step-up")).to_be_hidden()
    demo.expect_status("Confirm with your second factor", "error")
    expect(page.locator("#factors li")).to_have_count(1)


def test_a_second_step_left_unfinished_starts_over(page, api, new_account):
    account = new_account()
    demo = Demo(page, demo_url(api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)
    enrol(page, demo)
    demo.click("Log out")

    demo.log_in(account)
    expect(page.locator("#second-step-screen")).to_be_visible()
    page.locator("#second-step-form").get_by_role("button", name="Cancel").click()
    demo.expect_signed_out()
    # Five wrong codes kill the mfa token: the page says so and goes back to the login.
    demo.log_in(account)
    for _ in range(5):
        demo.enter_code("12345678abcdefgh")
        demo.expect_status("The code is wrong", "error")
    demo.enter_code("12345678abcdefgh")
    demo.expect_signed_out()
    demo.expect_status("sign in again", "error")


def test_google_login_of_an_account_with_two_step_verification(page, api, providers):
    google, _ = providers
    google.reset()
    google.user |= {"sub": "google-sub-mfa", "email": "mfa-victor@example.com"}
    try:
        demo = Demo(page, demo_url(api)).open()
        page.get_by_role("link", name="Sign in with Google").click()
        demo.expect_signed_in({"email": "mfa-victor@example.com"})
        app, _ = enrol(page, demo)
        demo.click("Log out")

        # The callback sets no session, only the mfa cookie, and comes back to the page,
        # which finds the pending step through GET /auth/login/mfa.
        with page.expect_response(lambda r: r.url.endswith("/auth/login/mfa")) as pending:
            page.get_by_role("link", name="Sign in with Google").click()
        assert pending.value.status == 200
        assert pending.value.json()["methods"] == ["totp", "recovery_code"]
        expect(page.locator("#second-step-screen")).to_be_visible()
        assert "token" not in page.url
        with page.expect_request("**/auth/login/mfa") as second_step:
            demo.enter_code(app.code())
        assert second_step.value.method == "POST"
        assert "mfa_token" not in second_step.value.post_data_json
        demo.expect_signed_in({"email": "mfa-victor@example.com"})
    finally:
        google.reset()
