"""The auth_service that tests/resource_server's verifiers trust: its settings, a
login, and tokens signed by its current key with claims changed."""

from __future__ import annotations

import os

import jwt
import requests

from auth_service import create_app
from config import TestingConfig
from helpers import PASSWORD, PRODUCTION_SECRETS, claims, current_key

ISSUER = "https://auth.example.test"
ACCOUNT = {"email": "rs@example.com", "username": "resource", "password": PASSWORD}
# Seconds: short enough for a rotation to complete within the test.
MAX_AGE, REFRESH = 2, 1


def verifier_env(service) -> dict:
    """What a verifier of its tokens knows: the JWKS URL, the issuer, its audience."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "JWKS_URL": f"{service.base_url}/.well-known/jwks.json",
        "ISSUER": ISSUER,
        "AUDIENCE": "api",
        "JWKS_MAX_AGE": str(MAX_AGE),
    }


def login(service) -> dict:
    response = requests.post(
        f"{service.base_url}/auth/login",
        json={"email": ACCOUNT["email"], "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def forged(service, **changes) -> str:
    """An access token signed by the service's current key, with ``changes``."""
    config = type(
        "ServiceConfig",
        (TestingConfig,),
        {
            "DATABASE_URL": service.url,
            "PUBLIC_BASE_URL": ISSUER,
            **{k: v for k, v in PRODUCTION_SECRETS.items()},
        },
    )
    app = create_app(config)
    key = current_key(app)
    payload = claims(login(service)["access_token"]) | changes
    return jwt.encode(
        payload, key.signing, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "at+jwt"}
    )
