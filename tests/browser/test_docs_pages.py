"""/docs and /redoc in headless Chromium: Swagger UI and ReDoc run from this origin under
their CSP (auth_service/security/headers.py DOCS_CSP), with no request to another origin."""

from __future__ import annotations

import pytest

from demo_page import screenshot


@pytest.fixture(scope="session")
def docs_api(start_server):
    """Production config with the docs asked for."""
    return start_server(API_DOCS_ENABLED="true")


@pytest.mark.parametrize(
    "path, rendered",
    [
        ("/docs", "#swagger-ui-container .opblock"),
        ("/redoc", "redoc [data-section-id]"),
    ],
)
def test_docs_pages_render_under_their_csp(page, docs_api, path, rendered):
    refused, elsewhere = [], []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.on("pageerror", lambda error: refused.append(str(error)))
    page.on(
        "response",
        lambda response: (
            elsewhere.append(response.url)
            if not response.url.startswith((docs_api.base_url, "data:", "blob:"))
            else None
        ),
    )

    page.goto(docs_api.base_url + path)
    page.locator(rendered).first.wait_for()
    screenshot(page, path.strip("/"))

    assert page.locator(rendered).count() > 10
    # ReDoc's sidebar logo (cdn.redoc.ly) is the one refusal expected: an image, not code.
    assert [text for text in refused if "cdn.redoc.ly" not in text] == []
    assert elsewhere == []
