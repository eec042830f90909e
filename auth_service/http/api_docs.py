"""The OpenAPI document flask-smorest builds: the shared error shape, the security
schemes, what the fields check in code, and what every operation has in common.

What every operation has in common is added here, from the routes themselves, so that
a new route is documented without repeating it: its ``operationId``, the 413 and 415
of every body (http.common.check_request_body), the 429 (and 503) of a rate-limited
view (security.limits.rate_limit), ``Retry-After`` on each of them.
"""

from __future__ import annotations

from apispec import BasePlugin
from flask import Flask

from auth_service.extensions import api
from auth_service.http.common import BODY_METHODS
from auth_service.http.schemas import ErrorSchema, openapi_attribute_functions

# operationIds are the view function's name in camelCase (``change_password`` ->
# ``changePassword``); these endpoints are named here instead, where that name would be
# vague or taken twice (``auth.login`` and ``oauth.login``). Client generators turn
# operationIds into method names: changing one breaks clients (CHANGELOG).
OPERATION_IDS = {
    "auth.refresh": "refreshTokens",
    "auth.csrf_token": "getCsrfToken",
    "auth.me": "getTokenUser",
    "auth.token_info": "getTokenInfo",
    "auth.active_sessions": "listSessions",
    "account_email.verify_email_link": "openVerifyEmailLink",
    "oauth.providers": "listProviders",
    "oauth.login": "startProviderLogin",
    "oauth.link": "linkProvider",
    "oauth.callback": "finishProviderLogin",
    "users.activate": "activateUser",
    "users.deactivate": "deactivateUser",
    "health.healthz": "checkHealth",
    "health.readyz": "checkReadiness",
}

RETRY_AFTER = {"$ref": "#/components/headers/RetryAfter"}
# Response components referenced by name from the operations.
SHARED_RESPONSES = {
    "PayloadTooLarge": ("413", "Body larger than MAX_CONTENT_LENGTH", False),
    "UnsupportedMediaType": ("415", "Body is not JSON (Content-Type: application/json)", False),
    "RateLimited": ("429", "Rate limit reached; Retry-After says when to try again", True),
    "RateLimitUnavailable": ("503", "Rate-limit storage unavailable; try again later", True),
}


def operation_id(endpoint: str, method: str, methods: int) -> str:
    """The operationId of ``endpoint`` (``blueprint.function``) for ``method``; a view
    serving several methods gets the method in front (``getThing``, ``postThing``)."""
    name = OPERATION_IDS.get(endpoint)
    if name is None:
        first, *rest = endpoint.rsplit(".", 1)[-1].strip("_").split("_")
        name = first + "".join(word[:1].upper() + word[1:] for word in rest)
    if methods > 1 and endpoint not in OPERATION_IDS:
        name = method.lower() + name[:1].upper() + name[1:]
    return name


class CommonResponsesPlugin(BasePlugin):
    """apispec plugin: completes each operation as flask-smorest hands it over."""

    def __init__(self, app: Flask):
        self.app = app

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        view = self.app.view_functions.get(rule.endpoint)
        for method, operation in operations.items():
            operation.setdefault(
                "operationId", operation_id(rule.endpoint, method, len(operations))
            )
            # flask-smorest keys them by int, apispec later by str: one spelling here.
            responses = {str(k): v for k, v in operation.get("responses", {}).items()}
            operation["responses"] = responses
            if method.upper() in BODY_METHODS:
                responses.setdefault("413", "PayloadTooLarge")
                responses.setdefault("415", "UnsupportedMediaType")
            fails_open = getattr(view, "rate_limit_fails_open", None)
            if fails_open is not None:
                responses.setdefault("429", "RateLimited")
                if not fails_open:
                    responses.setdefault("503", "RateLimitUnavailable")
            # A view's own 429 (the password budgets) carries the same header.
            for status in ("429", "503"):
                if isinstance(responses.get(status), dict):
                    responses[status].setdefault("headers", {})["Retry-After"] = RETRY_AFTER


def init_app(app: Flask) -> None:
    """Bind flask-smorest's Api and describe what it cannot see by itself."""
    # Read by init_app, which documents every default error response with it.
    api.ERROR_SCHEMA = ErrorSchema
    api.init_app(app, spec_kwargs={"extra_plugins": [CommonResponsesPlugin(app)]})
    # init_app builds a fresh spec and converter, so these are added once per app.
    for function in openapi_attribute_functions(app.config):
        api.ma_plugin.converter.add_attribute_function(function)
    api.spec.components.header(
        "RetryAfter",
        {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}},
    )
    for name, (_status, description, retry_after) in SHARED_RESPONSES.items():
        response = {
            "description": description,
            "content": {"application/json": {"schema": ErrorSchema}},
        }
        if retry_after:
            response["headers"] = {"Retry-After": RETRY_AFTER}
        api.spec.components.response(name, response)
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
