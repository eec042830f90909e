"""Secrets the database keeps but must not reveal (TOTP secrets), sealed with AES-256-GCM.

The key is KEY_ENCRYPTION_KEY. A sealed value names what it belongs to through the
associated data (``context``: the table and row), so a value copied into another row
does not open there. Spelling: ``v1.`` + base64url(12-byte nonce + ciphertext and tag).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

VERSION = "v1."
NONCE_BYTES = 12


class Unsealable(ValueError):
    """The value was sealed under another key or for another row, or was altered."""


def _cipher() -> AESGCM:
    return AESGCM(base64.b64decode(current_app.config["KEY_ENCRYPTION_KEY"]))


def seal(plaintext: str, context: str) -> str:
    """``plaintext`` encrypted and authenticated, bound to ``context``."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher().encrypt(nonce, plaintext.encode(), context.encode())
    return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(value: str, context: str) -> str:
    """The plaintext of ``seal(plaintext, context)``; Unsealable when it does not open."""
    if not value.startswith(VERSION):
        raise Unsealable("unknown sealing version")
    raw = base64.urlsafe_b64decode(value[len(VERSION) :])
    try:
        return _cipher().decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
    except InvalidTag:
        raise Unsealable("the value does not open with this key and context") from None
