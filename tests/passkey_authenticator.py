"""A software WebAuthn authenticator for the API tests: P-256 keys made with
``cryptography``, "none" attestation objects in CBOR (``cbor2``), ES256 assertions;
credentials in the JSON a browser's PublicKeyCredential.toJSON() gives.

It does what an authenticator and a browser do between them, no more: the server under
test must find every mistake a test asks it to make (another origin, no user
verification, a sign count that goes back).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = "https://auth.example.test"  # TestingConfig's PUBLIC_BASE_URL
RP_ID = "auth.example.test"

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    """One credential the authenticator holds."""

    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    """Creates credentials and signs assertions; counts signatures unless ``counter`` is off."""

    origin: str = ORIGIN
    user_verified: bool = True
    counter: bool = True
    backed_up: bool = False
    credentials: list[Credential] = field(default_factory=list)

    def _flags(self, extra: int = 0) -> int:
        flags = UP | extra
        if self.user_verified:
            flags |= UV
        if self.backed_up:
            flags |= BE | BS
        return flags

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode()

    def create(self, options: dict, origin: str | None = None) -> dict:
        """navigator.credentials.create(): a new credential for ``options`` (the
        server's creation options, as JSON)."""
        rp_id = options["rp"]["id"]
        credential = Credential(
            credential_id=secrets.token_bytes(16),
            key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id,
            user_handle=unb64url(options["user"]["id"]),
        )
        self.credentials.append(credential)
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(AT)])
            + struct.pack(">I", credential.sign_count)
            + bytes(16)  # AAGUID: none
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return _public_key_credential(
            credential,
            {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
        )

    def get(
        self,
        options: dict,
        credential: Credential | None = None,
        origin: str | None = None,
        sign_count: int | None = None,
    ) -> dict:
        """navigator.credentials.get(): an assertion for ``options`` by ``credential``
        (by default the first one allowed, or the first one held)."""
        if credential is None:
            allowed = {c["id"] for c in options.get("allowCredentials") or []}
            credential = next(
                c for c in self.credentials if not allowed or b64url(c.credential_id) in allowed
            )
        if sign_count is not None:
            credential.sign_count = sign_count
        elif self.counter:
            credential.sign_count += 1
        auth_data = (
            hashlib.sha256(options.get("rpId", credential.rp_id).encode()).digest()
            + bytes([self._flags()])
            + struct.pack(">I", credential.sign_count)
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = credential.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return _public_key_credential(
            credential,
            {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
        )


def _public_key_credential(credential: Credential, response: dict) -> dict:
    """A PublicKeyCredential as PublicKeyCredential.toJSON() gives it, around ``response``."""
    return {
        "id": b64url(credential.credential_id),
        "rawId": b64url(credential.credential_id),
        "type": "public-key",
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "response": response,
    }
