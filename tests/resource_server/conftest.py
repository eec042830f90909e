"""auth_service under gunicorn, shared by the verifiers of tests/resource_server."""

from __future__ import annotations

import pytest

from helpers import PRODUCTION_SECRETS
from issuer import ACCOUNT, ISSUER, MAX_AGE, REFRESH
from servers import failing_test, flask, private_database, server_env, start_gunicorn


@pytest.fixture(scope="package")
def service(tmp_path_factory):
    """auth_service under gunicorn, and the settings that reach its database."""
    with private_database("resource", tmp_path_factory) as url, failing_test():
        settings = {
            **PRODUCTION_SECRETS,
            "PUBLIC_BASE_URL": ISSUER,
            "JWKS_CACHE_SECONDS": str(MAX_AGE),
            "JWKS_REFRESH_SECONDS": str(REFRESH),
        }
        env = server_env(url, settings)
        flask(env, "db", "upgrade")
        server = start_gunicorn(env, tmp_path_factory.mktemp("rs-log") / "gunicorn.log")
        server.signup(ACCOUNT)
        server.env, server.url = env, url
        yield server
        server.stop()
