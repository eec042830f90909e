"""Every error handler, all answering in one JSON shape.

``{"code": 401, "status": "Unauthorized", "error": "token_expired",
"message": "...", "errors": {...}}`` -- ``errors`` only for validation.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus

from flask import Flask, jsonify, request
from flask_jwt_extended.exceptions import CSRFError
from limits.errors import StorageError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from auth_service.extensions import db, jwt

log = logging.getLogger(__name__)

# Machine-readable codes for plain HTTP errors.
DEFAULT_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
REALM = 'Bearer realm="auth_service"'


class APIError(Exception):
    """An error a view or service raises on purpose; rendered in the shared shape."""

    def __init__(self, status: int, error: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = headers or {}


def error_response(status: int, error: str | None = None, message: str | None = None,
                   errors: dict | None = None, headers: dict | None = None):
    """Build the JSON error response every handler returns."""
    phrase = HTTPStatus(status).phrase
    body = {
        "code": status,
        "status": phrase,
        "error": error or DEFAULT_ERROR_CODES.get(status, "error"),
        "message": message or phrase,
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def rate_limited(retry_after: float) -> APIError:
    """The 429 every rate limit answers: the shared shape, Retry-After in whole seconds."""
    seconds = max(1, math.ceil(retry_after))
    return APIError(429, "rate_limited", f"Too many requests; try again in {seconds} seconds.",
                    headers={"Retry-After": str(seconds)})


def unauthorized(error: str, message: str):
    """401 with the RFC 6750 challenge (``invalid_token`` only when a token was refused)."""
    challenge = REALM
    if error.startswith("token_") or error == "invalid_token":
        challenge = f'{REALM}, error="invalid_token", error_description="{message}"'
    return error_response(401, error, message, headers={"WWW-Authenticate": challenge})


def http_error_response(error: HTTPException):
    """Render a werkzeug/flask-smorest HTTP error, keeping headers such as ``Allow``."""
    status = error.code or 500
    if status >= 500:
        db.session.rollback()
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    message = data.get("message")
    if message is None:
        if status == 422:
            message = "The request body or query is invalid."
        elif status == 400 and errors:
            message = "The request body is not valid JSON."
        elif status >= 500:
            message = HTTPStatus(status).phrase
        else:
            message = error.description
    return error_response(status, None, message, errors, headers)


def register_error_handlers(app: Flask) -> None:
    """Install every handler; runs after the extensions so ours win."""

    @app.errorhandler(APIError)
    def handle_api_error(e: APIError):
        if e.status == 401:
            response = unauthorized(e.error, e.message)
            response.headers.update(e.headers)
            return response
        return error_response(e.status, e.error, e.message, headers=e.headers)

    @app.errorhandler(HTTPException)
    def handle_http_error(e: HTTPException):
        return http_error_response(e)

    @app.errorhandler(IntegrityError)
    def handle_integrity_error(e: IntegrityError):
        db.session.rollback()
        return error_response(409, "conflict", "The resource conflicts with an existing one.")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def handle_database_error(e: DBAPIError):
        db.session.rollback()
        log.error("database error on %s %s: %s", request.method, request.path,
                  type(e.orig).__name__ if e.orig is not None else type(e).__name__)
        return error_response(503, "database_unavailable",
                              "The database is unavailable; try again shortly.",
                              headers={"Retry-After": "5"})

    @app.errorhandler(StorageError)
    def handle_limit_storage_error(e: StorageError):
        # Counting in each worker's memory instead would multiply every limit by the
        # number of workers: a limit that cannot count refuses (docs/adr/0301).
        log.error("rate-limit storage unavailable on %s %s: %s", request.method, request.path,
                  type(e.storage_error).__name__)
        return error_response(503, "rate_limit_unavailable",
                              "Rate limiting is unavailable; try again shortly.",
                              headers={"Retry-After": "5"})

    @app.errorhandler(RecursionError)
    def handle_recursion(e: RecursionError):
        # json.loads on absurdly nested input.
        return error_response(400, "bad_request", "The request body is not valid JSON.")

    @app.errorhandler(ValueError)
    def handle_value_error(e: ValueError):
        # json.loads refuses integers longer than sys.get_int_max_str_digits() with a bare
        # ValueError, which webargs does not turn into its "invalid JSON" 400.
        if "integer string conversion" in str(e):
            return error_response(400, "bad_request", "The request body is not valid JSON.")
        return handle_unexpected(e)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(e: CSRFError):
        return error_response(403, "csrf_failed", "Missing or invalid X-CSRF-TOKEN header.")

    @app.errorhandler(Exception)
    def handle_unexpected(e: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Internal Server Error")

    register_jwt_error_loaders()


def register_jwt_error_loaders() -> None:
    """flask-jwt-extended answers 401 in our shape, never its default 422."""

    @jwt.unauthorized_loader
    def missing_token(reason: str):
        return unauthorized("authorization_required", "A bearer token is required.")

    @jwt.invalid_token_loader
    def invalid_token(reason: str):
        return unauthorized("invalid_token", "The token is invalid.")

    @jwt.expired_token_loader
    def expired_token(header: dict, payload: dict):
        return unauthorized("token_expired", "The token has expired.")

    @jwt.revoked_token_loader
    def revoked_token(header: dict, payload: dict):
        return unauthorized("token_revoked", "The token has been revoked.")

    @jwt.user_lookup_error_loader
    def unknown_user(header: dict, payload: dict):
        return unauthorized("invalid_token", "The token's account is unknown, inactive or "
                                             "its password has changed.")

    @jwt.token_verification_failed_loader
    def failed_verification(header: dict, payload: dict):
        return unauthorized("invalid_token", "The token is invalid.")

    @jwt.needs_fresh_token_loader
    def needs_fresh(header: dict, payload: dict):
        return unauthorized("fresh_token_required", "A fresh login is required.")
