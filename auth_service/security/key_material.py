"""Signing keys as bytes and objects: made by cryptography, described as JWKs by PyJWT.

Nothing here touches the database (auth_service.security.signing_keys does). A key's
``kid`` is its RFC 7638 thumbprint, so the same public key always has the same id; an
HS256 key's id is derived from its secret (JWT_SECRET_KEY) without revealing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, get_default_algorithms
from jwt.utils import der_to_raw_signature

ES256, EDDSA, RS256, HS256 = "ES256", "EdDSA", "RS256", "HS256"
ALGORITHMS = (ES256, EDDSA, RS256, HS256)
RSA_BITS = 2048
# The members of each key type that RFC 7638's thumbprint covers, and the JWKS shows.
THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


class DeterministicES256(ECAlgorithm):
    """ES256 whose nonce is derived from the key and the message (RFC 6979): the same
    claims signed by the same key give the same token, as HMAC, EdDSA and RSA do. A
    refresh in the grace window hands out the very token the first refresh got."""

    def __init__(self):
        super().__init__(hashes.SHA256)

    def sign(self, msg: bytes, key) -> bytes:
        signature = key.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        return der_to_raw_signature(signature, key.curve)


def use_deterministic_ecdsa() -> None:
    """Make PyJWT sign ES256 with DeterministicES256 (flask-jwt-extended signs through
    PyJWT's module-level functions). Verification is unchanged."""
    jwt.unregister_algorithm(ES256)
    jwt.register_algorithm(ES256, DeterministicES256())


class KeyMaterialError(ValueError):
    """A key this service cannot sign with (another type or curve, not a private key)."""


def generate(algorithm: str):
    """A new private key for ``algorithm`` (not HS256: its secret is JWT_SECRET_KEY)."""
    if algorithm == ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == RS256:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise KeyMaterialError(f"no key pair for {algorithm}")


def algorithm_of(private_key) -> str:
    """The algorithm this service signs with ``private_key``: P-256, Ed25519, RSA >= 2048."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        return ES256
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return EDDSA
    if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size >= RSA_BITS:
        return RS256
    raise KeyMaterialError("the key must be an EC P-256, Ed25519 or RSA (2048+ bits) private key")


def to_pem(private_key) -> str:
    """PKCS#8 PEM, unencrypted: sealing (security/sealing.py) encrypts it."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def from_pem(pem: str):
    """The private key of a PEM (PKCS#8 or traditional); KeyMaterialError otherwise."""
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError(f"not an unencrypted PEM private key ({exc})") from None


def public_jwk(private_key, algorithm: str) -> dict:
    """The public JWK of ``private_key`` as a JWKS lists it: the key's members, then
    ``kid`` (its thumbprint), ``use`` and ``alg``; never a private member."""
    described = get_default_algorithms()[algorithm].to_jwk(private_key.public_key(), as_dict=True)
    jwk = {name: described[name] for name in THUMBPRINT_MEMBERS[described["kty"]]}
    return jwk | {"kid": thumbprint(jwk), "use": "sig", "alg": algorithm}


def thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, no spaces."""
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def hs256_kid(secret: str) -> str:
    """The id of the HS256 key ``secret``: a MAC under it, so the id reveals nothing."""
    digest = hmac.new(secret.encode(), b"auth_service signing key id", hashlib.sha256).digest()
    return "hs256-" + b64url(digest[:16])


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
