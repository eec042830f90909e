"""WebAuthn ceremonies through py_webauthn (``webauthn``): the options a browser passes to
``navigator.credentials.create()`` / ``.get()``, and the checks of what it returns.

Every check is the library's: challenge, origin (against WEBAUTHN_ORIGINS), RP ID hash,
user presence and verification, attestation, signature and sign count. This module only
reads the relying party's settings and turns whatever a client sends into either a
verified result or None: a malformed credential is a refused one, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    generate_challenge,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

# How long a ceremony's challenge is accepted, and the timeout the browser is given.
CHALLENGE_LIFETIME = timedelta(minutes=5)
TRANSPORTS = {transport.value for transport in AuthenticatorTransport}
# What a hostile body can make the parsers raise: base64 and CBOR errors are ValueErrors.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass(frozen=True)
class Registered:
    """A verified new credential."""

    credential_id: str  # base64url
    public_key: bytes
    sign_count: int
    backed_up: bool
    transports: list[str]


@dataclass(frozen=True)
class Asserted:
    """A verified assertion."""

    new_sign_count: int
    backed_up: bool


def enabled() -> bool:
    """Whether a relying party is configured (WEBAUTHN_RP_ID, or PUBLIC_BASE_URL's host)."""
    return bool(current_app.config["WEBAUTHN_RP_ID"])


def _rp_id() -> str:
    return current_app.config["WEBAUTHN_RP_ID"]


def _origins() -> list[str]:
    return list(current_app.config["WEBAUTHN_ORIGINS"])


def new_challenge() -> bytes:
    """A fresh random challenge (64 bytes)."""
    return generate_challenge()


def challenge_digest(challenge: bytes) -> str:
    """What the database keeps of a challenge."""
    return hashlib.sha256(challenge).hexdigest()


def user_handle(user_id: int) -> bytes:
    """The WebAuthn user handle of an account: stable, and telling nothing of the account
    (not its id or email) to whoever reads the authenticator."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"webauthn-user:%d" % user_id, hashlib.sha256).digest()


def _descriptors(credentials: list[tuple[str, str | None]]) -> list[PublicKeyCredentialDescriptor]:
    descriptors = []
    for credential_id, transports in credentials:
        known = [AuthenticatorTransport(t) for t in (transports or "").split() if t in TRANSPORTS]
        descriptors.append(
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(credential_id), transports=known or None
            )
        )
    return descriptors


def registration_options(
    challenge: bytes,
    handle: bytes,
    user_name: str,
    display_name: str,
    exclude: list[tuple[str, str | None]],
) -> dict:
    """PublicKeyCredentialCreationOptions as JSON: a discoverable credential preferred,
    user verification required, no attestation, the account's passkeys excluded."""
    options = generate_registration_options(
        rp_id=_rp_id(),
        rp_name=current_app.config["WEBAUTHN_RP_NAME"],
        user_id=handle,
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=int(CHALLENGE_LIFETIME.total_seconds() * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(exclude),
    )
    return json.loads(options_to_json(options))


def authentication_options(challenge: bytes, allow: list[tuple[str, str | None]]) -> dict:
    """PublicKeyCredentialRequestOptions as JSON (user verification required); an empty
    ``allow`` lets the authenticator offer its discoverable credentials."""
    options = generate_authentication_options(
        rp_id=_rp_id(),
        challenge=challenge,
        timeout=int(CHALLENGE_LIFETIME.total_seconds() * 1000),
        allow_credentials=_descriptors(allow),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return json.loads(options_to_json(options))


def presented_challenge(credential: dict) -> bytes | None:
    """The challenge the client says it answered (clientDataJSON), unverified: which
    stored challenge to spend. None when it cannot be read."""
    try:
        client_data = base64url_to_bytes(credential["response"]["clientDataJSON"])
        return parse_client_data_json(client_data).challenge
    except MALFORMED:
        return None


def presented_credential(credential: dict) -> tuple[str, bytes | None] | None:
    """(credential id, user handle) of an assertion, unverified; None when malformed."""
    try:
        parsed = parse_authentication_credential_json(credential)
    except MALFORMED:
        return None
    return bytes_to_base64url(parsed.raw_id), parsed.response.user_handle


def presented_sign_count(credential: dict) -> int | None:
    """The signature counter an assertion claims (for the log of a refused one)."""
    try:
        parsed = parse_authentication_credential_json(credential)
        return parse_authenticator_data(parsed.response.authenticator_data).sign_count
    except MALFORMED:
        return None


def verify_registration(credential: dict, challenge: bytes) -> Registered | None:
    """The new credential, if ``credential`` answers ``challenge`` on one of our origins
    with user presence and verification; else None."""
    try:
        parsed = parse_registration_credential_json(credential)
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=_rp_id(),
            expected_origin=_origins(),
            require_user_verification=True,
        )
    except MALFORMED as refused:
        current_app.logger.info("passkey registration refused: %s", refused)
        return None
    return Registered(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        backed_up=verified.credential_backed_up,
        transports=[str(t.value) for t in parsed.response.transports or []],
    )


def verify_assertion(
    credential: dict, challenge: bytes, public_key: bytes, sign_count: int
) -> Asserted | None:
    """The verified assertion, if ``credential`` answers ``challenge`` on one of our
    origins, signed by ``public_key``, with user presence and verification, and a sign
    count above ``sign_count`` (unless both are 0: the authenticator keeps none)."""
    try:
        verified = verify_authentication_response(
            credential=parse_authentication_credential_json(credential),
            expected_challenge=challenge,
            expected_rp_id=_rp_id(),
            expected_origin=_origins(),
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except MALFORMED as refused:
        current_app.logger.info("passkey assertion refused: %s", refused)
        return None
    return Asserted(new_sign_count=verified.new_sign_count, backed_up=verified.credential_backed_up)
