"""The example SPA at /demo: served only when DEMO_ENABLED, with a page CSP of its own
while the API keeps its strict one."""

from __future__ import annotations

import re

import pytest

from auth_service.security import redirects
from auth_service.security.headers import API_CSP, PAGE_CSP
from config import DevelopmentConfig, ProductionConfig, TestingConfig


class DemoConfig(TestingConfig):
    DEMO_ENABLED = True


class Browser:
    """A client whose answers are read at once and closed (static files stream from disk)."""

    def __init__(self, client):
        self.client = client

    def get(self, path):
        with self.client.get(path) as response:
            response.get_data()
        return response


@pytest.fixture
def demo(make_app):
    return Browser(make_app(DemoConfig).test_client())


def test_demo_is_on_in_development_and_off_in_production():
    assert DevelopmentConfig.DEMO_ENABLED is True
    assert ProductionConfig.DEMO_ENABLED is False
    assert TestingConfig.DEMO_ENABLED is False


@pytest.mark.parametrize("path", ["/demo", "/demo/", "/demo/app.js", "/demo/index.html"])
def test_demo_is_not_served_when_disabled(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.mimetype == "application/json"


def test_demo_redirects_to_its_page(demo):
    response = demo.get("/demo")

    assert response.status_code in (301, 308)
    assert response.headers["Location"].endswith("/demo/")


def test_demo_page_gets_the_page_csp(demo):
    response = demo.get("/demo/")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    assert "default-src 'self'" in PAGE_CSP and "unsafe-inline" not in PAGE_CSP
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = response.get_data(as_text=True)
    # No inline script or style: the CSP would block them.
    assert '<script src="app.js" defer></script>' in page
    assert "<script>" not in page and "style=" not in page and "onclick=" not in page


SCRIPTS = ("app.js", "mfa.js", "account.js")


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [(f"/demo/{script}", "text/javascript") for script in SCRIPTS]
    + [("/demo/demo.css", "text/css"), ("/demo/favicon.svg", "image/svg+xml")],
)
def test_demo_assets(demo, path, mimetype):
    response = demo.get(path)

    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["Content-Security-Policy"] == PAGE_CSP


def test_the_api_keeps_its_strict_csp_with_the_demo_on(demo):
    for response in (demo.get("/healthz"), demo.get("/demo/no-such-file.js")):
        assert response.mimetype == "application/json"
        assert response.headers["Content-Security-Policy"] == API_CSP


def test_demo_is_not_in_the_api_document(demo):
    assert not [path for path in demo.get("/openapi.json").json["paths"] if "demo" in path]


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_keep_tokens_in_memory_only(demo, script):
    code = re.sub(r"//.*", "", demo.get(f"/demo/{script}").get_data(as_text=True))  # no comments

    for unsafe in ("localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("):
        assert unsafe not in code


def test_every_call_sends_the_cookies(demo):
    code = demo.get("/demo/app.js").get_data(as_text=True)

    assert 'credentials: "include"' in code
    for script in SCRIPTS[1:]:  # the others call through app.js's call() and api()
        assert "fetch(" not in demo.get(f"/demo/{script}").get_data(as_text=True)


@pytest.mark.parametrize("screen", ["reset-password", "verify-email", "mfa"])
def test_links_from_emails_and_redirects_open_the_page(demo, screen):
    response = demo.get(f"/demo/{screen}")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    assert response.get_data() == demo.get("/demo/").get_data()


def test_the_page_has_an_icon_and_favicon_ico_is_served(demo):
    page = demo.get("/demo/").get_data(as_text=True)
    assert '<link rel="icon" href="favicon.svg" type="image/svg+xml">' in page

    response = demo.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.get_data() == demo.get("/demo/favicon.svg").get_data()
    assert "/favicon.ico" not in demo.get("/openapi.json").json["paths"]


def test_without_the_demo_there_is_no_favicon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 404
    assert response.mimetype == "application/json"


def test_provider_logins_may_come_back_to_the_demo(make_app):
    allowlist = make_app(DemoConfig).extensions["auth_service.redirect_allowlist"]
    assert redirects.is_allowed("/demo/", allowlist)
    assert not redirects.is_allowed("/demox", allowlist)


def test_without_the_demo_its_path_is_not_a_redirect_target(app):
    assert not redirects.is_allowed("/demo/", app.extensions["auth_service.redirect_allowlist"])
