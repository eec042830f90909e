"""/docs/assets/: Swagger UI and ReDoc, pinned copies in auth_service/docs_assets/.

Served from the package rather than a CDN: the docs pages run on the API's own origin,
where a third-party script could read the CSRF cookie, and they work offline. Registered
only with API_DOCS_ENABLED, like the pages that use them; the files and their versions
are listed in auth_service/docs_assets/README.md.
"""

from __future__ import annotations

from flask import Blueprint

blp = Blueprint(
    "docs_assets", __name__, static_folder="../docs_assets", static_url_path="/docs/assets"
)
