"""auth_service: the application factory."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from auth_service.version import __version__
from config import (
    BASE_DIR,
    INSTANCE_DIR,
    Config,
    ConfigError,
    config_class_from_env,
    load_config,
)

__all__ = ["__version__", "create_app"]


def create_app(config_class: type[Config] | None = None) -> Flask:
    """Build the app; a bad configuration stops it with one line.

    Under the ``flask`` command a bad configuration gives an app whose command groups
    fail with that line, so that ``flask --help`` still lists them (cli_failures).
    """
    try:
        return build_app(config_class)
    except ConfigError as error:
        from auth_service import cli_failures

        if not cli_failures.loaded_by_flask_command():
            raise
        from flask_migrate.cli import db as migrations_cli

        from auth_service.cli import tokens_cli, users_cli
        from auth_service.cli_audit import audit_cli
        from auth_service.cli_keys import keys_cli

        return cli_failures.unconfigured_app(
            error, [migrations_cli, users_cli, tokens_cli, keys_cli, audit_cli]
        )


def build_app(config_class: type[Config] | None = None) -> Flask:
    """Build the app from small ``register_*`` steps."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_mapping(load_config(config_class or config_class_from_env()))
    register_proxy_fix(app)
    register_logging(app)
    register_request_log(app)
    register_metrics(app)
    register_cors(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_cli(app)
    register_commit_point(app)
    return app


def register_proxy_fix(app: Flask) -> None:
    """Trust X-Forwarded-* from exactly TRUSTED_PROXIES hops (client IP for rate limits)."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_logging(app: Flask) -> None:
    """stderr logging at LOG_LEVEL: JSON lines (LOG_JSON), plain text in development."""
    from auth_service.observability.request_log import configure_logging

    configure_logging(json_lines=app.config["LOG_JSON"])
    app.logger.setLevel(app.config["LOG_LEVEL"])


def register_request_log(app: Flask) -> None:
    """One log line per request and the X-Request-ID header (first, so its timer runs first)."""
    from auth_service.observability import request_log

    request_log.init_app(app)


def register_metrics(app: Flask) -> None:
    """With METRICS_ENABLED: count and time every request, serve /metrics (early, so its
    timer runs before the other hooks)."""
    from auth_service.observability import prometheus

    prometheus.init_app(app)


def register_cors(app: Flask) -> None:
    """CORS for CORS_ORIGINS (before the rate limits, so a preflight is never counted)."""
    from auth_service.security import cors

    cors.init_app(app)


def register_extensions(app: Flask) -> None:
    """Bind the extensions, database engine tweaks and password hasher."""
    from auth_service.extensions import db, jwt, migrate
    from auth_service.http import api_docs
    from auth_service.integrations import mail, oauth_providers
    from auth_service.persistence import engines
    from auth_service.security import jwt_checks, limits, link_tokens, passwords

    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    engines.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    jwt_checks.init_app(app)
    jwt.init_app(app)
    api_docs.init_app(app)
    limits.init_app(app)
    passwords.init_app(app)
    oauth_providers.init_app(app)
    mail.init_app(app)
    link_tokens.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Mount the blueprints through flask-smorest so they are documented."""
    from auth_service.extensions import api
    from auth_service.http import (
        account_email,
        admin,
        auth,
        discovery,
        health,
        mfa,
        oauth,
        passkeys,
        users,
    )
    from auth_service.http.common import check_request_body
    from auth_service.security import headers

    app.before_request(check_request_body)
    headers.init_app(app)
    for module in (auth, mfa, passkeys, account_email, oauth, users, admin, health, discovery):
        api.register_blueprint(module.blp)
    if app.config["API_DOCS_ENABLED"]:
        # Swagger UI and ReDoc for the pages flask-smorest serves (/docs, /redoc).
        from auth_service.http import docs_assets

        app.register_blueprint(docs_assets.blp)
    if app.config["DEMO_ENABLED"]:
        # The example SPA: plain pages, not part of the API or its documentation.
        from auth_service.http import demo

        app.register_blueprint(demo.blp)


def register_error_handlers(app: Flask) -> None:
    """One JSON error shape for everything (after the extensions, so ours win)."""
    from auth_service.errors import register_error_handlers as register

    register(app)


def register_commit_point(app: Flask) -> None:
    """Each request commits at its end, or rolls back; emails wait for the commit, audit
    events join it (last, so its after_request hook runs first)."""
    from auth_service.persistence import transactions
    from auth_service.services import alerts, audit

    transactions.init_app(app)
    audit.init_app(app)
    alerts.init_app(app)


def register_cli(app: Flask) -> None:
    """``flask users ...``, ``flask tokens ...``, ``flask keys ...`` and ``flask audit ...``;
    flask-migrate's ``flask db ...`` reports an unreachable database in one line too."""
    from auth_service.cli import tokens_cli, users_cli
    from auth_service.cli_audit import audit_cli
    from auth_service.cli_failures import guarded
    from auth_service.cli_keys import keys_cli

    app.cli.add_command(guarded(app.cli.commands["db"], migrated=False))
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(audit_cli)
