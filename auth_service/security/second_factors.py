"""The codes of two-step verification: TOTP (RFC 6238), recovery codes and mfa tokens.

TOTP is pyotp's: SHA-1, 6 digits, 30-second steps, the defaults every authenticator app
reads from an ``otpauth://`` URI. A code is accepted for the current step or one step
either side (clock skew), and only for a step later than the last one accepted, so a
code, once used, never works again (RFC 6238 section 5.2).

Recovery codes carry 80 random bits: their SHA-256 is stored, and no database copy can
be searched for them. An mfa token is 256 random bits, stored as its SHA-256 too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import segno

SKEW_STEPS = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_GROUPS = 4  # of 4 base32 characters: 16 x 5 = 80 bits
MFA_TOKEN_BYTES = 32


# --- TOTP -------------------------------------------------------------------------------


def new_totp_secret() -> str:
    """A random 160-bit secret in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """``uri`` as a QR code in inline SVG (medium error correction)."""
    return segno.make(uri, error="m").svg_inline(scale=4)


def matching_step(secret: str, code: str, now: datetime, after: int | None) -> int | None:
    """The time step, later than ``after``, within one step of ``now`` whose code is
    ``code``; None when there is none. Every candidate is compared in constant time."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - SKEW_STEPS, current + SKEW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step
    return found


# --- recovery codes ---------------------------------------------------------------------


def new_recovery_codes() -> list[str]:
    """Ten fresh codes, spelled ``xxxx-xxxx-xxxx-xxxx`` in lower-case base32."""
    return [_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]


def _recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def recovery_code_digest(code: str) -> str:
    """What is stored of a recovery code: the SHA-256 of its canonical spelling (no
    dashes or spaces, lower case), so it may be typed either way."""
    canonical = "".join(code.split()).replace("-", "").lower()
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- mfa tokens -------------------------------------------------------------------------


def new_mfa_token() -> str:
    """An opaque mfa token (not a JWT: no endpoint that takes a JWT can take it)."""
    return secrets.token_urlsafe(MFA_TOKEN_BYTES)


def mfa_token_digest(token: str) -> str:
    """What is stored of an mfa token."""
    return hashlib.sha256(token.encode()).hexdigest()
