"""Passkeys in the demo SPA (issue 21), in Chromium against gunicorn, with a virtual
authenticator of the DevTools protocol (WebAuthn domain: CTAP2, internal transport,
resident keys and user verification): add one, sign out, sign in with no email typed,
the login's second step, step-up, removal; and what is refused: a page of another
origin, a replayed assertion, a removed credential.

WebAuthn wants a secure context and an RP ID that is the page's host: the pages are
opened at http://localhost:<port> (a secure context), the server's RP ID is localhost.
"""

from __future__ import annotations

import pytest

from demo_page import Demo, expect, screenshot
from test_demo_mfa import lower_to_aal1


@pytest.fixture(scope="session")
def passkey_api(start_server):
    """A server whose relying party is localhost, its page origin http://localhost:<port>."""
    return start_server(
        PUBLIC_BASE_URL="http://localhost:{port}",
        WEBAUTHN_ORIGINS="http://localhost:{port}",
    )


def localhost_url(server) -> str:
    return server.base_url.replace("127.0.0.1", "localhost") + "/demo/"


@pytest.fixture
def authenticator(context, page):
    """A virtual platform authenticator for ``page``: its id and the CDP session."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def stored_credentials(authenticator) -> list[dict]:
    cdp, authenticator_id = authenticator
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]


def add_passkey(page, demo: Demo, name: str) -> None:
    card = page.locator("#passkeys-card")
    card.get_by_label("Name").fill(name)
    with page.expect_response(lambda r: r.url.endswith("/auth/passkeys/register")) as added:
        demo.click("Add a passkey")
    assert added.value.status == 201, added.value.text()
    demo.expect_status(f'The passkey "{name}" was added', "success")
    expect(card.locator("#passkeys li")).to_contain_text(name)


def test_add_sign_in_step_up_and_remove_a_passkey(
    page, passkey_api, new_account, authenticator, browser_database_url
):
    account = new_account()
    demo = Demo(page, localhost_url(passkey_api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)

    add_passkey(page, demo, "Laptop")
    [credential] = stored_credentials(authenticator)
    assert credential["isResidentCredential"] is True and credential["rpId"] == "localhost"
    screenshot(page, "20-passkey-added")

    # Signed out, a passkey signs in with no email typed.
    demo.click("Log out")
    demo.expect_signed_out()
    with page.expect_response(lambda r: r.url.endswith("/auth/passkeys/login")) as login:
        demo.click("Sign in with a passkey")
    assert login.value.status == 200
    demo.expect_signed_in(account)
    assert login.value.request.post_data_json["response"]["userHandle"]
    assert page.locator("#login-form").get_by_label("Email").input_value() == ""

    # The password alone is not enough any more: the second step takes the passkey.
    demo.click("Log out")
    with page.expect_response("**/auth/login") as first:
        demo.log_in(account)
    assert first.value.json()["methods"] == ["passkey"]
    expect(page.locator("#second-step-screen")).to_be_visible()
    with page.expect_response("**/auth/login/mfa") as second:
        demo.click("Use a passkey")
    assert second.value.status == 200
    demo.expect_signed_in(account)

    # Step-up with the passkey, then the removal it was asked for.
    lower_to_aal1(browser_database_url, account["email"])
    assert page.evaluate("() => window.authDemo.refresh()") is True  # a token saying aal1
    item = page.locator("#passkeys li")
    with page.expect_response(lambda r: "/users/me/passkeys/" in r.url) as refused:
        item.get_by_role("button", name="Remove").click()
    assert refused.value.status == 403 and refused.value.json()["error"] == "mfa_required"
    dialog = page.locator("#step-up")
    expect(dialog).to_be_visible()
    screenshot(page, "21-passkey-step-up")
    with page.expect_response(
        lambda r: "/users/me/passkeys/" in r.url and r.request.method == "DELETE" and r.ok
    ) as removed:
        dialog.get_by_role("button", name="Use a passkey").click()
    assert removed.value.status == 204
    expect(dialog).to_be_hidden()
    demo.expect_status("The passkey was removed", "success")
    expect(item).to_have_count(0)

    # The authenticator still holds the credential; the service no longer knows it.
    demo.click("Log out")
    with page.expect_response(lambda r: r.url.endswith("/auth/passkeys/login")) as gone:
        demo.click("Sign in with a passkey")
    assert gone.value.status == 401 and gone.value.json()["error"] == "invalid_passkey"
    demo.expect_status("The passkey was not accepted", "error")
    demo.expect_signed_out()


def test_a_replayed_assertion_is_refused(page, passkey_api, new_account, authenticator):
    account = new_account()
    demo = Demo(page, localhost_url(passkey_api)).open()
    demo.sign_up(account)
    demo.expect_signed_in(account)
    add_passkey(page, demo, "Phone")
    demo.click("Log out")
    with page.expect_request(lambda r: r.url.endswith("/auth/passkeys/login")) as sent:
        demo.click("Sign in with a passkey")
    demo.expect_signed_in(account)

    replay = page.request.post(sent.value.url, data=sent.value.post_data_json)

    assert replay.status == 401 and replay.json()["error"] == "invalid_passkey"


def test_a_page_of_another_origin_gets_no_assertion(page, passkey_api, new_account, authenticator):
    # http://127.0.0.1 is not on the RP ID (localhost): the browser itself refuses.
    account = new_account()
    localhost = Demo(page, localhost_url(passkey_api)).open()
    localhost.sign_up(account)
    localhost.expect_signed_in(account)
    add_passkey(page, localhost, "Laptop")

    other = page.context.new_page()
    demo = Demo(other, passkey_api.base_url + "/demo/").open()
    demo.expect_signed_out()
    calls = []
    other.on("request", lambda r: calls.append(r.url))
    demo.click("Sign in with a passkey")
    demo.expect_status("No passkey was used (SecurityError)", "error")
    assert not any(url.endswith("/auth/passkeys/login") for url in calls)
