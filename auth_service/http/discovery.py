"""What a resource server needs to verify our tokens on its own: the public keys (JWKS,
RFC 7517) and the metadata that names them (OpenID Connect discovery, RFC 8414)."""

from __future__ import annotations

import json

import marshmallow as ma
from flask import Response, current_app, request, url_for
from flask_smorest import Blueprint
from marshmallow import fields

from auth_service.security import signing_keys

blp = Blueprint(
    "discovery",
    __name__,
    url_prefix="/.well-known",
    description="Public keys and issuer metadata for services that verify access tokens",
)


class JWKSchema(ma.Schema):
    kty = fields.String(metadata={"example": "EC"})
    crv = fields.String(metadata={"example": "P-256"})
    x = fields.String()
    y = fields.String()
    n = fields.String()
    e = fields.String()
    kid = fields.String()
    use = fields.String(metadata={"example": "sig"})
    alg = fields.String(metadata={"example": "ES256"})


class JWKSSchema(ma.Schema):
    keys = fields.List(fields.Nested(JWKSchema))


class ServerMetadataSchema(ma.Schema):
    issuer = fields.String(metadata={"example": "https://auth.example.com"})
    jwks_uri = fields.String(metadata={"example": "https://auth.example.com/.well-known/jwks.json"})


@blp.route("/jwks.json", methods=["GET"])
@blp.response(200, JWKSSchema, description="The next, current and retired public keys")
@blp.alt_response(304, description="Not modified (If-None-Match matched the ETag)")
def jwks():
    """The public keys that verify access tokens, by ``kid``; cache them for max-age."""
    ring = signing_keys.keyring()
    headers = {
        "Cache-Control": f"public, max-age={current_app.config['JWKS_CACHE_SECONDS']}",
        "ETag": ring.etag,
    }
    if ring.etag.strip('"') in request.if_none_match:
        return Response(status=304, headers=headers)
    return Response(ring.jwks, mimetype="application/json", headers=headers)


def _metadata() -> Response:
    issuer = current_app.config["JWT_ISSUER"]
    base = current_app.config["PUBLIC_BASE_URL"]
    # Built from PUBLIC_BASE_URL, not the request's Host header, when it is set.
    jwks_uri = (
        base.rstrip("/") + url_for("discovery.jwks")
        if base
        else url_for("discovery.jwks", _external=True)
    )
    body = {"issuer": issuer, "jwks_uri": jwks_uri}
    return Response(
        json.dumps(body),
        mimetype="application/json",
        headers={"Cache-Control": f"public, max-age={current_app.config['JWKS_CACHE_SECONDS']}"},
    )


@blp.route("/openid-configuration", methods=["GET"])
@blp.response(200, ServerMetadataSchema)
def openid_configuration():
    """OpenID Connect discovery: the issuer and where its keys are."""
    return _metadata()


@blp.route("/oauth-authorization-server", methods=["GET"])
@blp.response(200, ServerMetadataSchema)
def oauth_authorization_server():
    """RFC 8414 authorization server metadata: the issuer and where its keys are."""
    return _metadata()
