"""Email addresses in their one canonical form, the form every comparison and lookup uses.

One mailbox has many spellings: ``Alice@Example.com``, full-width ``ａｌｉｃｅ@example.com``,
``x@exämple.com`` and its DNS form ``x@xn--exmple-cua.com``. Each is reduced to one
stored form (docs/adr/0101-canonical-email-addresses.md): trimmed, NFKC, lower-cased,
the domain IDNA-encoded (IDNA 2008 with UTS #46 mapping, so ``faß.de`` stays apart
from ``fass.de``). The domain is stored in its ASCII form: what DNS and SMTP use, and
the form RFC 5321's 254-character limit counts. Invisible and control characters are
refused rather than removed: an address that needs them is a spoof, not a typo.
"""

from __future__ import annotations

import unicodedata

import idna

# Unicode categories never valid in an address: controls, format characters (zero-width
# space and joiner, BOM, bidi overrides), surrogates, private use, unassigned, separators.
REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}
# Far longer than any address (254); bounds the work done on a hostile string.
MAX_INPUT_LENGTH = 1024


class InvalidEmail(ValueError):
    """An address that has no canonical form; the message says why, for the client."""


def normalize_email(value: str) -> str:
    """The canonical form of an address; InvalidEmail when it has none.

    It does not check the syntax beyond what the domain encoding needs: the schemas'
    email validator does that on the result.
    """
    if len(value) > MAX_INPUT_LENGTH:
        raise InvalidEmail(f"Must be at most {MAX_INPUT_LENGTH} characters.")
    text = unicodedata.normalize("NFKC", value.strip())
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise InvalidEmail(
                f"Must not contain invisible, control or space characters "
                f"(found U+{ord(char):04X})."
            )
    local, at, domain = text.lower().rpartition("@")
    if not at or not domain:
        return text.lower()
    return f"{local}@{_canonical_domain(domain)}"


def canonical_or_none(value: object) -> str | None:
    """The canonical form of ``value``, or None when it is not a string or has none."""
    if not isinstance(value, str):
        return None
    try:
        return normalize_email(value)
    except InvalidEmail:
        return None


def _canonical_domain(domain: str) -> str:
    """The ASCII (A-label) form; idna refuses an A-label that is not the canonical one."""
    if domain.isascii() and "xn--" not in domain:
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidEmail(
            f"The domain is not a valid internationalized domain name ({exc})."
        ) from None
