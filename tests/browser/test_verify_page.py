"""The page behind a verification link, in Chromium: opening it verifies nothing, its
inline script runs under its own CSP, and pressing the button verifies."""

from __future__ import annotations

import requests

from demo_page import expect, screenshot


def email_verified(server, account: dict):
    login = requests.post(
        f"{server.base_url}/auth/login",
        timeout=10,
        json={"email": account["email"], "password": account["password"]},
    ).json()
    me = requests.get(
        f"{server.base_url}/auth/me",
        timeout=10,
        headers={"Authorization": f"Bearer {login['access_token']}"},
    )
    return me.json()["email_verified"]


def test_the_button_verifies_and_opening_the_page_does_not(
    page, api, new_account, verification_link
):
    account = new_account()
    signup = requests.post(f"{api.base_url}/auth/signup", json=account, timeout=10)
    assert signup.status_code == 201, signup.text
    link = verification_link(api, signup.json())
    blocked = []
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    posts = []
    page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )

    page.goto(link)
    page.reload()
    expect(page.get_by_role("heading", name="Verify your email address")).to_be_visible()
    assert email_verified(api, account) is False
    screenshot(page, "05-verify-email-page")

    page.get_by_role("button", name="Verify my email address").click()

    expect(page.locator("#result")).to_have_text("Your email address is verified.")
    assert email_verified(api, account) is True
    assert posts == [f"{api.base_url}/auth/verify-email"]
    assert blocked == []
