"""/demo: the example single-page app (auth_service/demo/), served when DEMO_ENABLED.

Three static files, no build step: the reference integration a frontend copies.
Not part of the API: registered as a plain Flask blueprint, so it stays out of the
OpenAPI document; auth_service/security/headers.py gives its pages their own CSP.
"""

from __future__ import annotations

from flask import Blueprint

blp = Blueprint("demo", __name__, url_prefix="/demo", static_folder="../demo", static_url_path="")


@blp.get("/")
def index():
    """The page; /demo redirects here, and its script and styles sit beside it."""
    return blp.send_static_file("index.html")
