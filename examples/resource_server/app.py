"""A resource server that trusts auth_service's access tokens knowing only its JWKS URL,
issuer and audience: ``JWKS_URL=... ISSUER=... AUDIENCE=api python app.py``."""

import os

import jwt
from flask import Flask, jsonify, request

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ.get("AUDIENCE", "api")
# The JWKS is cached for its max-age; a kid it lacks (a rotation) fetches it again.
jwks = jwt.PyJWKClient(
    os.environ["JWKS_URL"],
    cache_keys=False,
    lifespan=int(os.environ.get("JWKS_MAX_AGE", "300")),
)
app = Flask(__name__)


def unauthorized(reason: str):
    response = jsonify(error="invalid_token", message=reason)
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response, 401


@app.get("/hello")
def hello():
    """200 with the caller's id for a valid access token, 401 for anything else."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return unauthorized("a bearer token is required")
    try:
        # RFC 9068: only an access token; a refresh token says otherwise in its header.
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],  # the key's own algorithm, never the token's
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"]},
        )
    except jwt.PyJWTError as exc:  # PyJWKClientError included
        return unauthorized(str(exc))
    return {"hello": claims["sub"], "session": claims["sid"]}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5001")))
