"""The OpenAPI document flask-smorest builds: the shared error shape, the security
schemes, and what the fields check in code."""

from __future__ import annotations

from flask import Flask

from auth_service.extensions import api
from auth_service.http.schemas import ErrorSchema, openapi_attribute_functions


def init_app(app: Flask) -> None:
    """Bind flask-smorest's Api and describe what it cannot see by itself."""
    # Read by init_app, which documents every default error response with it.
    api.ERROR_SCHEMA = ErrorSchema
    api.init_app(app)
    # init_app builds a fresh spec and converter, so these are added once per app.
    for function in openapi_attribute_functions(app.config):
        api.ma_plugin.converter.add_attribute_function(function)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    api.spec.components.security_scheme(
        "refreshCookie",
        {"type": "apiKey", "in": "cookie", "name": app.config["JWT_REFRESH_COOKIE_NAME"]},
    )
    api.spec.components.security_scheme(
        "csrfHeader",
        {"type": "apiKey", "in": "header", "name": app.config["JWT_REFRESH_CSRF_HEADER_NAME"]},
    )
