"""Decorators and request guards shared by the blueprints."""

from __future__ import annotations

from functools import wraps

from flask import Response, current_app, request
from flask_jwt_extended import current_user
from flask_jwt_extended.config import config as jwt_config

from auth_service.errors import APIError
from auth_service.security.jwt_checks import verify_token
from auth_service.http.schemas import ErrorSchema
from auth_service.services.sessions import TokenPair

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BEARER = [{"bearerAuth": []}]


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", "").lower()


def check_request_body() -> None:
    """before_request: size limit and JSON-only bodies for every endpoint.

    webargs would turn a form or text/plain body into a 422 (or silently ignore
    it); a JSON API answers 415.
    """
    if request.method not in BODY_METHODS or not _has_body():
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length and limit and request.content_length > limit:
        raise APIError(413, "payload_too_large", f"The request body exceeds {limit} bytes.")
    if not request.is_json:
        raise APIError(415, "unsupported_media_type", "Content-Type must be application/json.")


def json_required(fn):
    """The endpoint needs a JSON body: a request without one is a 415, not a 422."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        if not _has_body() or not request.is_json:
            raise APIError(415, "unsupported_media_type",
                           "A JSON body with Content-Type: application/json is required.")
        return fn(*args, **kwargs)

    return wrapper


def token_required(locations: tuple[str, ...], refresh: bool = False):
    """``jwt_required(refresh=refresh, locations=locations)``, through
    auth_service.security.jwt_checks.verify_token (one parse of the token)."""

    def decorator(fn):
        @wraps(fn)
        def guarded(*args, **kwargs):
            verify_token(locations, refresh)
            return fn(*args, **kwargs)

        return guarded

    return decorator


def access_required(blp, superuser: bool = False):
    """Require a valid access token in ``Authorization: Bearer`` (and document it)."""

    def decorator(fn):
        @wraps(fn)
        def superuser_only(*args, **kwargs):
            if not current_user.is_superuser:
                raise APIError(403, "forbidden", "Superuser privileges are required.")
            return fn(*args, **kwargs)

        guarded = token_required(("headers",))(superuser_only if superuser else fn)
        guarded = blp.doc(security=BEARER)(guarded)
        guarded = blp.alt_response(
            401, schema=ErrorSchema,
            description="Missing, malformed, expired or revoked access token",
        )(guarded)
        if superuser:
            guarded = blp.alt_response(403, schema=ErrorSchema, description="Not a superuser")(guarded)
        return guarded

    return decorator


def set_refresh_cookies(response: Response, pair: TokenPair) -> None:
    """The refresh cookie and its CSRF cookie, as flask-jwt-extended's
    set_refresh_cookies writes them (names, paths and flags from the JWT_* settings).

    Its own reads the CSRF value back by decoding, and verifying, the token that was
    just encoded; the pair holds that value already.
    """
    cookies = [(jwt_config.refresh_cookie_name, pair.refresh_token, True,
                jwt_config.refresh_cookie_path)]
    if jwt_config.cookie_csrf_protect and jwt_config.csrf_in_cookies:
        cookies.append((jwt_config.refresh_csrf_cookie_name, pair.csrf, False,
                        jwt_config.refresh_csrf_cookie_path))
    for name, value, httponly, path in cookies:
        response.set_cookie(name, value=value, max_age=pair.refresh_max_age,
                            secure=jwt_config.cookie_secure, httponly=httponly,
                            domain=jwt_config.cookie_domain, path=path,
                            samesite=jwt_config.cookie_samesite)
