"""/docs and /redoc: Swagger UI and ReDoc from this package under a strict CSP, and
API_DOCS_ENABLED turning the pages, their assets and the document off."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from auth_service.security.headers import DOCS_CSP
from config import DevelopmentConfig, ProductionConfig, TestingConfig, load_config
from helpers import PRODUCTION_SECRETS, assert_error

ASSETS = Path(__file__).resolve().parents[1] / "auth_service" / "docs_assets"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


class PageRefs(HTMLParser):
    """The scripts and stylesheets a page loads, and the code it carries inline."""

    def __init__(self, html: str):
        super().__init__()
        self.urls, self.inline, self.attributes = [], [], {}
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attributes.setdefault(tag, []).append(attrs)
        if tag == "script":
            self._in_script = "src" not in attrs
            if "src" in attrs:
                self.urls.append(attrs["src"])
        elif tag == "link" and attrs.get("rel") == "stylesheet":
            self.urls.append(attrs["href"])
        if any(name.startswith("on") for name in attrs):
            self.inline.append(f"<{tag}> event handler")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)


@pytest.fixture(params=["/docs", "/redoc"])
def docs_page(request, client):
    response = client.get(request.param)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response


def test_docs_pages_load_only_same_origin_scripts_and_no_inline_code(docs_page):
    refs = PageRefs(docs_page.get_data(as_text=True))
    assert refs.urls
    for url in refs.urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url
        assert url.startswith("/docs/assets/"), url
    assert refs.inline == []


def test_every_asset_of_the_docs_pages_is_served_with_its_type(client, docs_page):
    for url in PageRefs(docs_page.get_data(as_text=True)).urls:
        with client.get(url) as response:
            assert response.status_code == 200, url
            assert response.mimetype == CONTENT_TYPES[Path(url).suffix], url
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.get_data()


def test_docs_pages_carry_a_csp_allowing_scripts_from_this_origin_only(docs_page):
    csp = docs_page.headers["Content-Security-Policy"]
    assert csp == DOCS_CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert not re.search(r"https?:|\*|unsafe-eval", csp)


def test_swagger_ui_is_started_with_the_document_and_the_configured_options(client):
    refs = PageRefs(client.get("/docs").get_data(as_text=True))
    (container,) = [a for a in refs.attributes["div"] if a.get("id") == "swagger-ui-container"]
    assert container["data-spec-url"] == "/openapi.json"
    assert json.loads(container["data-config"]) == {}
    assert "/docs/assets/swagger-init.js" in refs.urls


def test_vendored_assets_match_the_hashes_their_readme_records():
    recorded = re.findall(
        r"^(\S+)\s+(sha384-\S+)$", (ASSETS / "README.md").read_text(), re.MULTILINE
    )
    assert len(recorded) == 3
    for name, integrity in recorded:
        digest = hashlib.sha384((ASSETS / name).read_bytes()).digest()
        assert integrity == "sha384-" + base64.b64encode(digest).decode(), name


class DocsOffConfig(TestingConfig):
    API_DOCS_ENABLED = False


@pytest.mark.parametrize(
    "path",
    [
        "/docs",
        "/redoc",
        "/openapi.json",
        "/docs/assets/swagger-init.js",
        "/docs/assets/swagger-ui/swagger-ui-bundle.js",
    ],
)
def test_with_the_docs_off_pages_assets_and_document_answer_404(make_app, path):
    client = make_app(DocsOffConfig).test_client()
    assert_error(client.get(path), 404)
    # The API itself is unaffected.
    assert client.get("/healthz").status_code == 200


def test_docs_are_off_in_production_and_on_in_development():
    assert load_config(ProductionConfig, environ=PRODUCTION_SECRETS)["API_DOCS_ENABLED"] is False
    settings = load_config(
        ProductionConfig, environ={**PRODUCTION_SECRETS, "API_DOCS_ENABLED": "true"}
    )
    assert (settings["API_DOCS_ENABLED"], settings["OPENAPI_URL_PREFIX"]) == (True, "/")
    assert DevelopmentConfig.API_DOCS_ENABLED is True
