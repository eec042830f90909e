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

from auth_service.error_codes import FOR_STATUS, UNLISTED_CODE, Error
from auth_service.extensions import db, jwt
from auth_service.observability import metrics

log = logging.getLogger(__name__)

REALM = 'Bearer realm="auth_service"'


class APIError(Exception):
    """An error a view or service raises on purpose; rendered in the shared shape.

    ``APIError(Error.X, label=...)`` fills in the member's message; ``message=`` replaces it.
    """

    def __init__(
        self,
        error: Error,
        message: str | None = None,
        headers: dict | None = None,
        **fields: object,
    ):
        if not isinstance(error, Error):
            raise TypeError(f"APIError takes a member of Error, not {error!r}")
        message = error.format(**fields) if message is None else message
        super().__init__(message)
        self.member = error
        self.status, self.error, self.message = error.status, error.code, message
        self.headers = headers or {}


def error_response(
    error: Error,
    message: str | None = None,
    errors: dict | None = None,
    headers: dict | None = None,
):
    """The JSON response of ``error``; a 401 carries the RFC 6750 challenge."""
    message = message or error.message
    if error.status == 401:
        challenge = REALM
        if error.bearer_error:
            challenge += f', error="{error.bearer_error}", error_description="{message}"'
        headers = {"WWW-Authenticate": challenge} | (headers or {})
    return _json_error(error.status, error.code, message, errors, headers)


def _json_error(
    status: int, code: str, message: str | None, errors: dict | None, headers: dict | None
):
    """Build the JSON error response every handler returns."""
    phrase = HTTPStatus(status).phrase
    body = {
        "code": status,
        "status": phrase,
        "error": code,
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
    return APIError(Error.RATE_LIMITED, seconds=seconds, headers={"Retry-After": str(seconds)})


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
            message = Error.VALIDATION_ERROR.message
        elif status == 400 and errors:
            message = Error.BAD_REQUEST.message
        elif status >= 500:
            message = HTTPStatus(status).phrase
        else:
            message = error.description
    member = FOR_STATUS.get(status)
    # Not error_response: a plain 401 has no token to challenge.
    return _json_error(status, member.code if member else UNLISTED_CODE, message, errors, headers)


def register_error_handlers(app: Flask) -> None:
    """Install every handler; runs after the extensions so ours win."""

    @app.errorhandler(APIError)
    def handle_api_error(e: APIError):
        return error_response(e.member, e.message, headers=e.headers)

    @app.errorhandler(HTTPException)
    def handle_http_error(e: HTTPException):
        return http_error_response(e)

    @app.errorhandler(IntegrityError)
    def handle_integrity_error(e: IntegrityError):
        db.session.rollback()
        return error_response(Error.CONFLICT)

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def handle_database_error(e: DBAPIError):
        db.session.rollback()
        metrics.database_error(e)
        log.error(
            "database error on %s %s: %s",
            request.method,
            request.path,
            type(e.orig).__name__ if e.orig is not None else type(e).__name__,
        )
        return error_response(Error.DATABASE_UNAVAILABLE, headers={"Retry-After": "5"})

    @app.errorhandler(StorageError)
    def handle_limit_storage_error(e: StorageError):
        # Counting in each worker's memory instead would multiply every limit by the
        # number of workers: a limit that cannot count refuses (docs/adr/0301).
        log.error(
            "rate-limit storage unavailable on %s %s: %s",
            request.method,
            request.path,
            type(e.storage_error).__name__,
        )
        return error_response(Error.RATE_LIMIT_UNAVAILABLE, headers={"Retry-After": "5"})

    @app.errorhandler(RecursionError)
    def handle_recursion(e: RecursionError):
        # json.loads on absurdly nested input.
        return error_response(Error.BAD_REQUEST)

    @app.errorhandler(ValueError)
    def handle_value_error(e: ValueError):
        # json.loads refuses integers longer than sys.get_int_max_str_digits() with a bare
        # ValueError, which webargs does not turn into its "invalid JSON" 400.
        if "integer string conversion" in str(e):
            return error_response(Error.BAD_REQUEST)
        return handle_unexpected(e)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(e: CSRFError):
        return error_response(Error.CSRF_FAILED)

    @app.errorhandler(Exception)
    def handle_unexpected(e: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(Error.INTERNAL_ERROR)

    register_jwt_error_loaders()


def register_jwt_error_loaders() -> None:
    """flask-jwt-extended answers 401 in our shape, never its default 422."""

    @jwt.unauthorized_loader
    def missing_token(reason: str):
        return error_response(Error.AUTHORIZATION_REQUIRED)

    @jwt.invalid_token_loader
    def invalid_token(reason: str):
        return error_response(Error.INVALID_TOKEN)

    @jwt.expired_token_loader
    def expired_token(header: dict, payload: dict):
        return error_response(Error.TOKEN_EXPIRED)

    @jwt.revoked_token_loader
    def revoked_token(header: dict, payload: dict):
        return error_response(Error.TOKEN_REVOKED)

    @jwt.user_lookup_error_loader
    def unknown_user(header: dict, payload: dict):
        return error_response(
            Error.INVALID_TOKEN,
            "The token's account is unknown, inactive or its password has changed.",
        )

    @jwt.token_verification_failed_loader
    def failed_verification(header: dict, payload: dict):
        return error_response(Error.INVALID_TOKEN)

    @jwt.needs_fresh_token_loader
    def needs_fresh(header: dict, payload: dict):
        return error_response(Error.FRESH_TOKEN_REQUIRED)
