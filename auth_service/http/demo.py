"""/demo: the example single-page app (auth_service/demo/), served when DEMO_ENABLED.

Static files, no build step: the reference integration a frontend copies.
Not part of the API: registered as a plain Flask blueprint, so it stays out of the
OpenAPI document; auth_service/security/headers.py gives its pages their own CSP.
"""

from __future__ import annotations

from flask import Blueprint

blp = Blueprint("demo", __name__, url_prefix="/demo", static_folder="../demo", static_url_path="")

# Where the API's emails and redirects land with FRONTEND_URL=<origin>/demo: the page
# itself, whose script shows the screen (reset-password, verify-email, mfa).
SCREENS = ("reset-password", "verify-email", "mfa")


@blp.get("/")
def index():
    """The page; /demo redirects here, and its script and styles sit beside it."""
    return blp.send_static_file("index.html")


for _screen in SCREENS:
    blp.add_url_rule(f"/{_screen}", f"screen_{_screen}", index, methods=["GET"])


def favicon():
    """The demo's icon at the address browsers ask for by default (pages that link none,
    such as /docs or a JSON answer opened in a tab), instead of a 404."""
    return blp.send_static_file("favicon.svg")


# At the root, not under /demo; only while the demo is on, like every route here: a
# production API serves no pages and needs no icon.
blp.record_once(lambda state: state.app.add_url_rule("/favicon.ico", "favicon", favicon))
