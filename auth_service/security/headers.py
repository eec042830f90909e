"""Security headers on every response (OWASP secure headers for JSON APIs)."""

from flask import Flask, Response, request

# A JSON API renders nothing: no scripts, no frames, no plugins.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The example SPA (/demo) runs its own script and styles and calls the API on its own
# origin: nothing inline, nothing from elsewhere, never framed.
PAGE_CSP = (
    "default-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
# /docs and /redoc: Swagger UI and ReDoc from this origin only (auth_service/docs_assets/),
# no inline script; the two set inline styles, fetch the document, and ReDoc runs its
# search index in a worker it builds from a blob.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# flask-smorest's name for the blueprint of the document and the docs pages.
DOCS_BLUEPRINT = "api-docs"
HSTS = "max-age=63072000; includeSubDomains"

# (name, value): what every response, every JSON answer, every /demo
# page and every https response carries unless the view set the header itself.
_ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_JSON = (("Content-Security-Policy", API_CSP), ("Cache-Control", "no-store"))
_PAGE = (("Content-Security-Policy", PAGE_CSP),)
_DOCS = (("Content-Security-Policy", DOCS_CSP),)
_SECURE = (("Strict-Transport-Security", HSTS),)


def add_security_headers(response: Response) -> Response:
    """after_request: nosniff, no referrer, no framing, no caching of API answers.

    Tokens and profiles must never sit in a shared or browser cache, so every
    API response is ``no-store``; the HTML docs pages get DOCS_CSP, the /demo pages
    PAGE_CSP. A 204 carries no Content-Type.
    """
    wanted = _ALWAYS
    if response.status_code == 204:
        # No content, so no type (RFC 9110 15.3.5): flask-smorest labels its empty answer
        # application/json and Flask's plain Response text/html. Still an API answer.
        del response.headers["Content-Type"]
        wanted += _JSON
    elif response.mimetype == "application/json":
        wanted += _JSON
    elif request.blueprint == "demo":
        wanted += _PAGE
    elif request.blueprint == DOCS_BLUEPRINT:
        wanted += _DOCS
    if request.is_secure:
        wanted += _SECURE
    # Headers.setdefault scans the list once per header; one pass over it serves all.
    headers = response.headers
    present = {name.lower() for name in headers.keys()}
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
    return response


def init_app(app: Flask) -> None:
    """Register the after_request hook."""
    app.after_request(add_security_headers)
