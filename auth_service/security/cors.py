"""CORS for browser apps on other origins, and the Origin check on cookie requests.

Only the origins listed in CORS_ORIGINS (exact ``scheme://host[:port]``, no
wildcard, no pattern) are answered with ``Access-Control-Allow-Origin: <that
origin>`` and ``Access-Control-Allow-Credentials: true``, so a single-page app
there can send the refresh cookie and read the answer. Every answer carries them,
errors included: an app must be able to read *why* a call failed (401
``token_expired``, 429 and its ``Retry-After``). Every answer says ``Vary:
Origin`` because it depends on it. Any other origin gets no CORS header at all,
and the browser hides the answer from its page.

CORS only decides what a page may *read*: a cross-site form or ``no-cors`` fetch
can still *send* a request with the cookie. The double-submit ``X-CSRF-TOKEN``
header stops those, and ``refuse_foreign_origin`` also refuses a
cookie-authenticated request whose ``Origin`` is neither this service nor listed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask, current_app, request

from auth_service.errors import APIError, Error
from config import ConfigError

EXTENSION_KEY = "auth_service.cors_origins"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
# Headers a page may read beyond the CORS-safelisted ones.
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate, X-Request-ID"
# Seconds a browser may reuse a preflight answer.
PREFLIGHT_MAX_AGE = "600"
DEFAULT_PORTS = {"http": 80, "https": 443}
# A host name (letters, digits, dots, hyphens) or an IPv6 address; no wildcards.
HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")


def parse_origins(entries) -> frozenset[str]:
    """The allow-list from CORS_ORIGINS; ConfigError for anything but a plain origin.

    An entry must be spelled exactly as a browser sends ``Origin`` (lower case, no
    default port, no path or trailing slash), or it would silently never match.
    """
    origins = set()
    for entry in entries or ():
        parts = urlsplit(entry)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (
            parts.scheme not in DEFAULT_PORTS
            or not HOST.fullmatch(parts.hostname or "")
            or "@" in parts.netloc
            or port in (-1, DEFAULT_PORTS[parts.scheme])
            or entry != entry.lower()
            or entry != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ConfigError(
                f"CORS_ORIGINS: {entry!r} is not an origin such as "
                "https://app.example.com (lower case, no path, no trailing "
                "slash, no default port)"
            )
        origins.add(entry)
    return frozenset(origins)


def init_app(app: Flask) -> None:
    """Parse the allow-list and register the hooks (before the rate limits' hooks)."""
    app.extensions[EXTENSION_KEY] = parse_origins(app.config["CORS_ORIGINS"])
    app.before_request(answer_preflight)
    app.after_request(add_cors_headers)


def origin_allowed(origin: str | None) -> bool:
    """Whether ``origin`` is on CORS_ORIGINS."""
    return origin in current_app.extensions[EXTENSION_KEY]


def answer_preflight():
    """before_request: answer a preflight from an allowed origin itself.

    It never reaches a view, so it is never counted by a rate limit. A preflight from
    any other origin gets Flask's plain OPTIONS answer, without CORS headers, and
    the browser does not send the real request.
    """
    if (
        request.method != "OPTIONS"
        or "Access-Control-Request-Method" not in request.headers
        or not origin_allowed(request.headers.get("Origin"))
    ):
        return None
    response = current_app.response_class(status=204)
    response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response.headers["Access-Control-Allow-Headers"] = (
        f"Authorization, Content-Type, {current_app.config['JWT_REFRESH_CSRF_HEADER_NAME']}"
    )
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response


def add_cors_headers(response):
    """after_request: echo an allowed Origin with credentials, on every answer."""
    if not current_app.extensions[EXTENSION_KEY]:
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin_allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        if request.method != "OPTIONS":
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return response


def refuse_foreign_origin() -> None:
    """403 unless the request's Origin is absent, this service's own, or on CORS_ORIGINS.

    For requests the refresh cookie authenticates: a browser always sends Origin on
    a cross-origin request, so a page elsewhere cannot use the cookie even before
    the CSRF header is checked. Clients that are not browsers send no Origin.
    """
    origin = request.headers.get("Origin")
    if origin is None or origin_allowed(origin):
        return
    if origin.lower() == f"{request.scheme}://{request.host}".lower():
        return
    raise APIError(Error.ORIGIN_NOT_ALLOWED)
