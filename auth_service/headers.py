"""Security headers on every response (OWASP secure headers for JSON APIs)."""

from flask import Flask, Response, request

# A JSON API renders nothing: no scripts, no frames, no plugins.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The example SPA (/demo) runs its own script and styles and calls the API on its own
# origin: nothing inline, nothing from elsewhere, never framed.
PAGE_CSP = ("default-src 'self'; object-src 'none'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")
HSTS = "max-age=63072000; includeSubDomains"


def add_security_headers(response: Response) -> Response:
    """after_request: nosniff, no referrer, no framing, no caching of API answers.

    Tokens and profiles must never sit in a shared or browser cache, so every
    API response is ``no-store``; the HTML docs pages load Swagger UI / ReDoc
    from a CDN and keep the browser defaults for CSP; the /demo pages get PAGE_CSP.
    """
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "application/json":
        headers.setdefault("Content-Security-Policy", API_CSP)
        headers.setdefault("Cache-Control", "no-store")
    elif request.blueprint == "demo":
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    """Register the after_request hook."""
    app.after_request(add_security_headers)
