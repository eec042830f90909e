"""Tokens whose key is the attack: unknown, never published, revoked, retired and
expired, confused with another algorithm, or named by the token itself. Each is a 401
in the shared shape."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from freezegun import freeze_time

from auth_service.security import key_material
from config import TestingConfig
from helpers import LOGIN_TIME, b64url, claims, current_key, login, me, refresh, sign_segments
from test_jwt_attacks import assert_refused


def b64url_json(value) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def test_a_token_signed_by_a_key_that_was_never_published_is_refused(app, client, alice_tokens):
    stranger = ec.generate_private_key(ec.SECP256R1())
    payload = claims(alice_tokens["access_token"])
    own_kid = key_material.public_jwk(stranger, "ES256")["kid"]
    # Under its own kid (unknown), and under the current key's kid (wrong signature).
    for kid in (own_kid, current_key(app).kid):
        forged = jwt.encode(
            payload, stranger, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}
        )
        assert_refused(me(client, forged), "invalid_token")


def test_key_confusion_an_hs256_token_keyed_with_the_public_key_is_refused(
    app, client, alice_tokens
):
    """The classic: HMAC with the published public key's bytes as the secret."""
    key = current_key(app)
    public_pem = key.verifying.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_bytes = json.dumps(key.jwk).encode()
    payload = alice_tokens["access_token"].split(".")[1]
    for secret in (public_pem, jwk_bytes):
        header = b64url_json({"alg": "HS256", "kid": key.kid, "typ": "at+jwt"})
        forged = sign_segments(header, payload, secret, algorithm="HS256")
        assert_refused(me(client, forged), "invalid_token")


def test_a_token_of_a_revoked_key_is_refused_at_once(client, runner, alice_tokens):
    kid = jwt.get_unverified_header(alice_tokens["access_token"])["kid"]
    assert me(client, alice_tokens["access_token"]).status_code == 200

    assert runner.invoke(args=["keys", "revoke", "--yes", "--", kid]).exit_code == 0

    assert_refused(me(client, alice_tokens["access_token"]), "invalid_token")


def test_a_key_revoked_through_one_instance_is_refused_at_once_by_another(
    make_app, client, auth, runner
):
    """The other instance's key ring still holds the key (read less than
    JWKS_REFRESH_SECONDS ago): its token check's read says the key is revoked."""
    other = make_app(TestingConfig).test_client()
    with freeze_time(LOGIN_TIME):
        tokens = auth.signup_and_login()
        kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
        assert me(other, tokens["access_token"]).status_code == 200
        assert kid in [key["kid"] for key in other.get("/.well-known/jwks.json").json["keys"]]

        assert runner.invoke(args=["keys", "revoke", "--yes", "--", kid]).exit_code == 0

        # No time has passed: the refusal comes from the database, not a re-read ring.
        assert_refused(me(other, tokens["access_token"]), "invalid_token")
        assert_refused(refresh(other, tokens["refresh_token"]), "invalid_token")
        # Having met the revocation, the instance reads its keys again at once: it no
        # longer publishes the key nor signs with it.
        assert kid not in [key["kid"] for key in other.get("/.well-known/jwks.json").json["keys"]]
        again = login(other).json
        assert jwt.get_unverified_header(again["access_token"])["kid"] != kid
        assert me(other, again["access_token"]).status_code == 200


def test_a_token_of_a_retired_key_is_refused_once_the_key_has_expired(app, client, auth, runner):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        tokens = auth.login().json
        # An access token that would still be valid when its key leaves the JWKS.
        key = current_key(app)
        payload = claims(tokens["access_token"]) | {
            "exp": int((LOGIN_TIME + timedelta(days=30)).timestamp())
        }
        long_lived = jwt.encode(
            payload, key.signing, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"}
        )
        assert runner.invoke(args=["keys", "rotate"]).exit_code == 0
        frozen.tick(timedelta(seconds=TestingConfig.JWKS_CACHE_SECONDS + 31))
        auth.login()  # the new key signs; the old one is retired
        assert me(client, long_lived).status_code == 200
        frozen.tick(TestingConfig.JWT_REFRESH_TOKEN_EXPIRES + timedelta(seconds=31))
        assert_refused(me(client, long_lived), "invalid_token")


@pytest.mark.parametrize("field", ["jku", "jwk", "x5u", "x5c", "crit"])
def test_a_header_that_names_its_own_key_is_refused(app, client, alice_tokens, field):
    value = {
        "jku": "https://attacker.example/jwks.json",
        "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIBszCCAVmgAwIBAgIUBogus"],
        "crit": ["exp"],
    }[field]
    key = current_key(app)
    header = b64url_json({"alg": "ES256", "kid": key.kid, "typ": "at+jwt", field: value})
    forged = sign_segments(header, alice_tokens["access_token"].split(".")[1], key.signing)
    assert_refused(me(client, forged), "invalid_token")


def test_tokens_from_before_key_ids_verify_until_the_adopted_secret_expires(app, client, auth):
    """The header {"alg":"HS256","typ":"JWT"} of the previous release, under
    JWT_SECRET_KEY: accepted while the adopted HS256 key is retired-not-expired."""
    with freeze_time(LOGIN_TIME) as frozen:
        tokens = auth.signup_and_login()
        old_style = claims(tokens["access_token"]) | {"type": "access", "fresh": False}
        for name in ("iss", "aud", "client_id"):
            old_style.pop(name)
        legacy = jwt.encode(old_style, app.config["JWT_SECRET_KEY"], algorithm="HS256")
        assert jwt.get_unverified_header(legacy) == {"alg": "HS256", "typ": "JWT"}
        assert me(client, legacy).status_code == 200
        # The same claims under a kid-less ES256 header are not the old form.
        key = current_key(app)
        assert_refused(me(client, jwt.encode(old_style, key.signing, algorithm="ES256")))
        frozen.tick(TestingConfig.JWT_REFRESH_TOKEN_EXPIRES + timedelta(seconds=31))
        assert_refused(me(client, legacy), "invalid_token")
