"""Prometheus for the app: ``GET /metrics``, the request hooks, and the view decorators
that count what a flow's refusals were.

Off unless METRICS_ENABLED: then every request is counted and timed by its Flask endpoint
(never its path), and ``/metrics`` answers the addresses in METRICS_ALLOW only, as the
app believes them: the socket peer, or what ProxyFix took from TRUSTED_PROXIES. nginx
does not pass ``/metrics`` on (deploy/nginx.conf); Prometheus scrapes each instance
directly. It is not part of the API, so not in the OpenAPI document (ADR 2405).

Under gunicorn (PROMETHEUS_MULTIPROC_DIR, set by gunicorn.conf.py) the answer sums the
files every worker, live or gone, counted into; elsewhere it is this process's registry.
"""

from __future__ import annotations

import ipaddress
import os
import time
from functools import wraps

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_jwt_extended.exceptions import (
    JWTExtendedException,
    RevokedTokenError,
    UserLookupError,
)
from jwt.exceptions import ExpiredSignatureError, InvalidTokenError
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from auth_service.errors import APIError, Error
from auth_service.observability import metrics

# Where init_app keeps the parsed METRICS_ALLOW networks.
EXTENSION = "metrics_allow"
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

blp = Blueprint("metrics", __name__)


def client_address() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address as the app believes it (ProxyFix applied); an IPv4-mapped
    IPv6 address (a dual-stack socket) as its IPv4 address."""
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def allowed(address) -> bool:
    """Whether METRICS_ALLOW holds ``address``."""
    return address is not None and any(
        address in network for network in current_app.extensions[EXTENSION]
    )


def registry() -> CollectorRegistry:
    """What to expose: every worker's files in multiprocess mode, else this process."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


@blp.route("/metrics", methods=["GET"])
def serve_metrics():
    """The metrics in Prometheus's text format (OpenMetrics when the scraper asks)."""
    if not allowed(client_address()):
        raise APIError(Error.FORBIDDEN, "Metrics are not served to this address.")
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encode(registry()), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def start_timer() -> None:
    """before_request: note when the request started."""
    g.metrics_started = time.perf_counter()


def count_request(response: Response) -> Response:
    """after_request: count the answer by endpoint, method and status, with its time."""
    started = g.get("metrics_started")
    metrics.request(
        request.endpoint,
        request.method,
        response.status_code,
        time.perf_counter() - started if started is not None else None,
    )
    return response


def counts_login(view):
    """Count the logins a rate limit refuses (the per-IP limit or a failure budget);
    the view and accounts.authenticate count the other outcomes."""

    @wraps(view)
    def counted(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except APIError as error:
            if error.member is Error.RATE_LIMITED:
                metrics.login(Error.RATE_LIMITED.code)
            raise

    return counted


def counts_refresh(view):
    """Count a refresh refused before or during rotation (rotation counts the rotated
    and grace answers): expired, revoked, reused, or otherwise invalid."""

    @wraps(view)
    def counted(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except Exception as error:
            result = _refusal(error)
            if result is not None:
                metrics.refresh(result)
            raise

    return counted


def _refusal(error: Exception) -> str | None:
    """The REFRESH_RESULTS value of an exception on the way out of the refresh view."""
    if isinstance(error, ExpiredSignatureError):
        return "expired"
    # A lookup error: the account is deleted, inactive or its password changed.
    if isinstance(error, (RevokedTokenError, UserLookupError)):
        return "revoked"
    if isinstance(error, APIError):
        return {Error.TOKEN_REUSED: "reused", Error.TOKEN_REVOKED: "revoked"}.get(
            error.member, "invalid" if error.status == 401 else None
        )
    if isinstance(error, (InvalidTokenError, JWTExtendedException)):
        return "invalid"
    return None


def init_app(app: Flask) -> None:
    """With METRICS_ENABLED, count every request and serve ``/metrics``; register early,
    so the timer starts before the other before_request hooks."""
    if not app.config["METRICS_ENABLED"]:
        return
    app.extensions[EXTENSION] = [
        ipaddress.ip_network(cidr, strict=False) for cidr in app.config["METRICS_ALLOW"]
    ]
    app.before_request(start_timer)
    app.after_request(count_request)
    app.register_blueprint(blp)
