"""The demo SPA's account screens (issue 22), in Chromium against gunicorn: forgot and
reset password, email verification, profile, deletion, the coloured status line and
the icon."""

from __future__ import annotations

import requests

from demo_page import Demo, expect, screenshot

RED, GREEN = "rgb(180, 35, 24)", "rgb(6, 118, 71)"


def demo_url(server) -> str:
    return f"{server.base_url}/demo/"


def status_colour(demo: Demo) -> str:
    return demo.status.evaluate("element => getComputedStyle(element).color")


def test_errors_are_red_and_confirmations_green(page, api, new_account):
    account = new_account()
    demo = Demo(page, demo_url(api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)

    form = page.locator("#password-form")
    form.get_by_label("Current password").fill("not the password")
    form.get_by_label("New password").fill("an entirely new passphrase")
    form.get_by_role("button", name="Change password").click()
    demo.expect_status("password", "error")
    assert status_colour(demo) == RED

    form.get_by_label("Current password").fill(account["password"])
    form.get_by_label("New password").fill("an entirely new passphrase")
    form.get_by_role("button", name="Change password").click()
    demo.expect_status("Password changed", "success")
    assert status_colour(demo) == GREEN


def test_the_page_and_the_site_have_an_icon(page, api):
    Demo(page, demo_url(api)).open()
    icon = page.locator('link[rel="icon"]').evaluate("link => link.href")

    for url in (icon, f"{api.base_url}/favicon.ico"):
        response = page.request.get(url)
        assert response.status == 200, url
        assert response.headers["content-type"].startswith("image/svg+xml")


def test_forgot_password_then_reset_it_from_the_emailed_link(page, api, new_account, reset_link):
    account = new_account()
    api.signup(account)
    demo = Demo(page, demo_url(api)).open()
    page.locator("#login-form").get_by_label("Email").fill(account["email"])

    page.get_by_role("button", name="Forgot your password?").click()
    forgot = page.locator("#forgot-form")
    expect(forgot.get_by_label("Email")).to_have_value(account["email"])
    with page.expect_response("**/auth/forgot-password") as sent:
        forgot.get_by_role("button", name="Email me a link").click()
    assert sent.value.status == 202
    demo.expect_status("If an account uses this email address", "success")
    screenshot(page, "20-forgot-password")
    forgot.get_by_role("button", name="Back to login").click()
    demo.expect_signed_out()

    # The link of the email, with FRONTEND_URL=<server>/demo.
    page.goto(reset_link(api, account["email"]))
    expect(page.locator("#reset-screen")).to_be_visible()
    assert "token" not in page.url  # out of the address bar and the history
    screenshot(page, "21-reset-password")
    page.locator("#reset-form").get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Set password").click()
    demo.expect_signed_out()
    demo.expect_status("Your password has been changed", "success")

    demo.log_in(account)
    demo.expect_status("Invalid email or password", "error")
    demo.log_in(account | {"password": "a brand new passphrase"})
    demo.expect_signed_in(account)


def test_a_used_reset_link_is_refused(page, api, new_account, reset_link):
    account = new_account()
    api.signup(account)
    link = reset_link(api, account["email"])
    demo = Demo(page, link).open()
    page.locator("#reset-form").get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Set password").click()
    demo.expect_status("Your password has been changed", "success")

    demo.open()
    page.locator("#reset-form").get_by_label("New password").fill("yet another passphrase")
    page.get_by_role("button", name="Set password").click()
    demo.expect_status("This link is invalid or has already been used", "error")
    expect(page.locator("#reset-screen")).to_be_visible()


def test_resend_the_verification_email_then_verify_from_the_link(
    page, api, new_account, verification_link
):
    account = new_account()
    signup = requests.post(f"{api.base_url}/auth/signup", json=account, timeout=10)
    assert signup.status_code == 201, signup.text
    demo = Demo(page, demo_url(api)).open()
    demo.log_in(account)
    demo.expect_signed_in(account)
    notice = page.locator("#unverified")
    expect(notice).to_be_visible()

    with page.expect_response("**/auth/verify-email/resend") as resent:
        notice.get_by_role("button", name="Send the link again").click()
    assert resent.value.status == 202
    demo.expect_status(f"A verification link has been sent to {account['email']}", "success")
    screenshot(page, "22-verification-resent")

    # With FRONTEND_URL=<server>/demo the API redirects the link to /demo/verify-email#token=.
    token = verification_link(api, signup.json()).split("token=", 1)[1]
    page.goto(f"{api.base_url}/demo/verify-email#token={token}")
    expect(page.locator("#verify-screen")).to_be_visible()
    assert "token" not in page.url
    screenshot(page, "23-verify-email")
    with page.expect_response("**/auth/verify-email") as verified:
        demo.click("Verify my email address")
    assert verified.value.status == 200
    demo.expect_status("Your email address is verified.", "success")

    demo.click("Continue")  # the session of this browser is still there
    demo.expect_signed_in(account)
    expect(page.locator("#me")).to_contain_text("Email verifiedyes")
    expect(notice).to_be_hidden()


def test_a_verification_link_that_failed_says_why(page, api):
    demo = Demo(page, f"{api.base_url}/demo/verify-email?status=expired").open()

    expect(page.locator("#verify-screen")).to_be_visible()
    demo.expect_status("This link has expired", "error")
    expect(page.get_by_role("button", name="Verify my email address")).to_be_hidden()


def test_edit_the_profile(page, api, new_account):
    taken, account = new_account(), new_account()
    api.signup(taken)
    demo = Demo(page, demo_url(api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)
    form = page.locator("#profile-form")
    expect(form.get_by_label("Username")).to_have_value(account["username"])

    form.get_by_label("Username").fill(taken["username"])
    form.get_by_role("button", name="Save profile").click()
    demo.expect_status("taken", "error")

    form.get_by_label("Full name").fill("Ada Lovelace")
    form.get_by_label("Username").fill(f"{account['username']}-ada")
    form.get_by_role("button", name="Save profile").click()
    demo.expect_status("Profile saved.", "success")
    expect(page.locator("#me-name")).to_have_text("Ada Lovelace")
    expect(page.locator("#me")).to_contain_text(f"{account['username']}-ada")
    screenshot(page, "24-profile-saved")
    page.reload()
    expect(page.locator("#me-name")).to_have_text("Ada Lovelace")


def test_delete_the_account(page, api, new_account):
    account = new_account()
    demo = Demo(page, demo_url(api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)
    form = page.locator("#delete-form")

    page.once("dialog", lambda dialog: dialog.dismiss())  # "are you sure?": no
    form.get_by_label("Password").fill(account["password"])
    form.get_by_role("button", name="Delete my account").click()
    demo.expect_signed_in(account)

    form.get_by_label("Password").fill("not the password")
    page.once("dialog", lambda dialog: dialog.accept())
    form.get_by_role("button", name="Delete my account").click()
    demo.expect_status("password", "error")
    screenshot(page, "25-delete-account")

    form.get_by_label("Password").fill(account["password"])
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response("**/users/me") as deleted:
        form.get_by_role("button", name="Delete my account").click()
    assert deleted.value.status == 204
    demo.expect_signed_out()
    demo.expect_status("Your account has been deleted.", "success")
    page.reload()
    demo.expect_signed_out()
    demo.log_in(account)
    demo.expect_status("Invalid email or password", "error")
