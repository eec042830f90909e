"""Decorators and request guards shared by the blueprints."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import wraps

import flask_jwt_extended
from flask import Response, current_app, request
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import NoAuthorizationError

from auth_service.errors import APIError, Error
from auth_service.http.schemas import ErrorSchema
from auth_service.security.token_form import check_compact_form
from auth_service.services import mfa
from auth_service.services.sessions import TokenPair

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BEARER = [{"bearerAuth": []}]


def _has_body() -> bool:
    return (
        bool(request.content_length)
        or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )


def check_request_body() -> None:
    """before_request: size limit and JSON-only bodies for every endpoint.

    webargs would turn a form or text/plain body into a 422 (or silently ignore
    it); a JSON API answers 415.
    """
    if request.method not in BODY_METHODS or not _has_body():
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length and limit and request.content_length > limit:
        raise APIError(Error.PAYLOAD_TOO_LARGE, limit=limit)
    if not request.is_json:
        raise APIError(Error.UNSUPPORTED_MEDIA_TYPE)


def json_required(fn):
    """The endpoint needs a JSON body: a request without one is a 415, not a 422."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        if not _has_body() or not request.is_json:
            raise APIError(
                Error.UNSUPPORTED_MEDIA_TYPE,
                "A JSON body with Content-Type: application/json is required.",
            )
        return fn(*args, **kwargs)

    return wrapper


def token_required(locations: tuple[str, ...], refresh: bool = False):
    """``jwt_required(refresh=refresh, locations=locations)``, once every token the request
    presents in those places has the one spelling this service writes."""

    def decorator(fn):
        @wraps(fn)
        def guarded(*args, **kwargs):
            for token in presented_tokens(locations, refresh):
                check_compact_form(token)
            try:
                verify_jwt_in_request(refresh=refresh, locations=list(locations))
            except NoAuthorizationError:
                if not refresh:
                    raise  # errors.py's loader: "A bearer token is required."
                raise missing_refresh_token(locations) from None
            return fn(*args, **kwargs)

        return guarded

    return decorator


def missing_refresh_token(locations: tuple[str, ...]) -> APIError:
    """The 401 of a request without a refresh token, naming where this endpoint reads it
    (not "a bearer token": these endpoints never read the Authorization header)."""
    config = current_app.config
    cookie = f"the refresh cookie ({config['JWT_REFRESH_COOKIE_NAME']})"
    if locations == ("cookies",):
        where = f"{cookie} is missing; log in first"
    else:
        places = {"json": f"`{config['JWT_REFRESH_JSON_KEY']}` in the JSON body", "cookies": cookie}
        where = "send " + " or ".join(places[location] for location in locations)
    return APIError(Error.REFRESH_TOKEN_REQUIRED, where=where)


def presented_tokens(locations: tuple[str, ...], refresh: bool) -> Iterator:
    """The raw tokens in ``locations``, found where flask-jwt-extended looks for them
    (its JWT_* settings name the header, cookie and JSON key)."""
    config = current_app.config
    kind = "REFRESH" if refresh else "ACCESS"
    if "headers" in locations:
        value = request.headers.get(config["JWT_HEADER_NAME"], "").strip().strip(",")
        for field in re.split(r",\s*", value):
            words = field.split()
            if len(words) == 2 and words[0] == config["JWT_HEADER_TYPE"]:
                yield words[1]
    if "cookies" in locations and request.cookies.get(config[f"JWT_{kind}_COOKIE_NAME"]):
        yield request.cookies[config[f"JWT_{kind}_COOKIE_NAME"]]
    if "json" in locations and request.is_json:
        body = request.get_json(silent=True)
        key = config["JWT_REFRESH_JSON_KEY" if refresh else "JWT_JSON_KEY"]
        if isinstance(body, dict) and body.get(key):
            yield body[key]


def access_required(blp, superuser: bool = False):
    """Require a valid access token in ``Authorization: Bearer`` (and document it)."""

    def decorator(fn):
        @wraps(fn)
        def superuser_only(*args, **kwargs):
            if not current_user.is_superuser:
                raise APIError(Error.FORBIDDEN)
            return fn(*args, **kwargs)

        guarded = token_required(("headers",))(superuser_only if superuser else fn)
        guarded = blp.doc(security=BEARER)(guarded)
        guarded = blp.alt_response(
            401,
            schema=ErrorSchema,
            description="Missing, malformed, expired or revoked access token",
        )(guarded)
        if superuser:
            guarded = blp.alt_response(403, schema=ErrorSchema, description="Not a superuser")(
                guarded
            )
        return guarded

    return decorator


def aal2_required(blp):
    """For an account with two-step verification on, an access token of a session that
    has proven a second factor (403 ``mfa_required`` otherwise). Under access_required."""

    def decorator(fn):
        @wraps(fn)
        def stepped_up(*args, **kwargs):
            mfa.require_aal2(current_user, get_jwt())
            return fn(*args, **kwargs)

        return blp.alt_response(
            403,
            schema=ErrorSchema,
            description="Two-step verification is on and this session has not proven "
            "a second factor (POST /auth/mfa/challenge)",
        )(stepped_up)

    return decorator


def set_refresh_cookies(response: Response, pair: TokenPair) -> None:
    """The refresh cookie and its CSRF cookie (flask-jwt-extended's), living as long as
    the session."""
    flask_jwt_extended.set_refresh_cookies(
        response, pair.refresh_token, max_age=pair.refresh_max_age
    )
