"""The demo SPA served from other origins than the API: another port of the same site
(SameSite=Lax cookies), another site (SameSite=None; Secure), and an origin that is not
on CORS_ORIGINS."""

from __future__ import annotations

import requests

from demo_page import REFRESH, Demo, expect, screenshot

REFRESH_COOKIE = "refresh_token_cookie"


def cookies_by_name(context, url: str) -> dict:
    """The cookies the browser would send to ``url``."""
    return {cookie["name"]: cookie for cookie in context.cookies(url)}


def test_spa_on_another_port_of_the_same_site(page, context, api, spa_host, new_account):
    account = new_account()
    origin = f"http://127.0.0.1:{spa_host.port}"
    demo = Demo(page, f"{origin}/same-site/").open()
    demo.expect_signed_out()  # its providers list came from the API through CORS
    expect(page.get_by_role("link", name="Sign in with Google")).to_be_visible()

    with page.expect_response("**/auth/login") as login:
        demo.sign_up(account)
    demo.expect_signed_in(account)
    assert login.value.url.startswith(api.base_url)
    assert login.value.header_value("access-control-allow-origin") == origin
    assert login.value.header_value("access-control-allow-credentials") == "true"
    csrf = login.value.json()["csrf_token"]
    assert (
        cookies_by_name(context, f"{api.base_url}/auth/refresh")[REFRESH_COOKIE]["sameSite"]
        == "Lax"
    )

    # Reload: the cookie goes to the API with credentials, the CSRF value comes back
    # from /auth/csrf, and the refresh repeats it in X-CSRF-TOKEN.
    with page.expect_request(REFRESH) as refresh:
        page.reload()
    demo.expect_signed_in(account)
    assert refresh.value.header_value("x-csrf-token") == csrf
    assert refresh.value.header_value("origin") == origin
    screenshot(page, "05-cross-origin-same-site")

    with page.expect_response("**/auth/logout") as logout:
        demo.click("Log out")
    assert logout.value.status == 200
    demo.expect_signed_out()
    page.reload()
    demo.expect_signed_out()


def test_spa_on_another_site(third_party_cookies_context, cross_site_api, spa_host, new_account):
    account = new_account()
    page = third_party_cookies_context.new_page()
    demo = Demo(page, f"http://localhost:{spa_host.port}/cross-site/").open()
    demo.expect_signed_out()

    demo.sign_up(account)
    demo.expect_signed_in(account)
    cookie = cookies_by_name(
        third_party_cookies_context, f"{cross_site_api.base_url}/auth/refresh"
    )[REFRESH_COOKIE]
    assert (cookie["sameSite"], cookie["secure"], cookie["httpOnly"]) == ("None", True, True)
    # The page cannot read the API's CSRF cookie: the value came in the login answer.
    assert "csrf_refresh_token" not in demo.cookie_names()

    with page.expect_response(REFRESH) as refresh:
        page.reload()
    demo.expect_signed_in(account)
    assert refresh.value.status == 200
    assert refresh.value.request.header_value("x-csrf-token")
    screenshot(page, "06-cross-site")

    demo.click("Log out")
    demo.expect_signed_out()
    page.reload()
    demo.expect_signed_out()


def test_a_page_on_an_origin_not_allowed_gets_nothing(context, api, spa_host, new_account):
    # Signed in on /demo: the browser holds a valid refresh cookie for the API's site.
    account = new_account()
    api.signup(account)
    own = Demo(context.new_page(), f"{api.base_url}/demo/").open()
    own.log_in(account)
    own.expect_signed_in(account)
    foreign_origin = f"http://127.0.0.1:{spa_host.other_port}"
    foreign_page = context.new_page()
    foreign = Demo(foreign_page, f"{foreign_origin}/foreign/")

    def failed(path):
        return foreign_page.expect_event(
            "requestfailed", lambda request: request.url == f"{api.base_url}{path}"
        )

    # Same site (127.0.0.1), another port, not on CORS_ORIGINS: no answer is readable.
    with failed("/auth/csrf"):
        foreign.open()
    expect(foreign.status).to_contain_text("cannot be reached")
    # The browser did send the cookie with it (same site): the server refused the Origin.
    cookie = cookies_by_name(context, f"{api.base_url}/auth/csrf")[REFRESH_COOKIE]["value"]
    refused = requests.get(
        f"{api.base_url}/auth/csrf",
        timeout=10,
        headers={"Origin": foreign_origin, "Cookie": f"{REFRESH_COOKIE}={cookie}"},
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in refused.headers

    # A login needs a preflight, which gets no CORS answer: the POST is never sent.
    with failed("/auth/login"):
        foreign.log_in(account)
    expect(foreign.status).to_contain_text("cannot be reached from this page")
    screenshot(foreign_page, "07-origin-not-allowed")

    # What it can send without a preflight (a "simple" POST with the cookie) is refused.
    for path in ("/auth/refresh", "/auth/logout"):
        with foreign_page.expect_response(f"{api.base_url}{path}") as answer:
            foreign_page.evaluate(
                """url => fetch(url, {method: "POST", mode: "no-cors",
                                                        credentials: "include"})""",
                f"{api.base_url}{path}",
            )
        assert answer.value.status in (401, 403)
        assert answer.value.header_value("access-control-allow-origin") is None

    # The session was not touched.
    own.page.reload()
    own.expect_signed_in(account)
