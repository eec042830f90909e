"""Where a provider login may send the browser afterwards: an allow-list, no open redirect.

An allow-list entry is an origin (``https://app.example.com``: any path there), an
origin with a path (``https://app.example.com/auth/done``: that path and below), or
a local path (``/welcome``: that path and below on this service's own host).
FRONTEND_URL is always allowed, as an origin-with-path entry.

A ``next`` is compared only after it has been refused for everything a browser
would read differently from ``urlsplit``: whitespace and control characters
anywhere (browsers drop tabs and newlines, so ``/\\t/evil`` becomes ``//evil``),
backslashes (``/\\evil`` is ``//evil`` to a browser), non-ASCII, scheme-relative
``//evil``, schemes other than http(s) (``javascript:``, ``JavaScript:``), a
missing host (``https:evil``), user info (``https://app@evil``) and dot segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from config import ConfigError

MAX_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Allowed:
    """One allow-list entry; ``scheme``/``host``/``port`` are None for a local path."""

    scheme: str | None
    host: str | None
    port: int | None
    path: str

    def matches(self, scheme: str | None, host: str | None, port: int | None, path: str) -> bool:
        """Same origin (or both local), and ``path`` is the entry's path or below it."""
        if (self.scheme, self.host, self.port) != (scheme, host, port):
            return False
        prefix = self.path.rstrip("/")
        return not prefix or path == prefix or path.startswith(prefix + "/")


def _split(url: str) -> tuple[str | None, str | None, int | None, str] | None:
    """(scheme, host, port, path) of a safe absolute or local URL, or None if it is unsafe."""
    if not 0 < len(url) <= MAX_LENGTH or not url.isascii():
        return None
    if any(ch <= " " or ch == "\x7f" or ch == "\\" for ch in url):
        return None
    if url.startswith("/"):
        if url.startswith("//"):
            return None
        parts = urlsplit(url)
        scheme = host = port = None
    else:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc:
            return None
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            return None
        host = parts.hostname
        if not host:
            return None
    path = parts.path or "/"
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        return None
    return scheme, host, port, path


def parse_allowlist(entries, frontend_url: str | None) -> list[Allowed]:
    """The allow-list from OAUTH_REDIRECT_ALLOWLIST and FRONTEND_URL; ConfigError if malformed."""
    allowed = []
    for name, entry in [("FRONTEND_URL", frontend_url)] + [
        ("OAUTH_REDIRECT_ALLOWLIST", e) for e in entries or ()
    ]:
        if not entry:
            continue
        split = _split(entry)
        if split is None or (name == "FRONTEND_URL" and split[0] is None):
            raise ConfigError(
                f"{name}: {entry!r} is not an http(s) origin/URL"
                + ("" if name == "FRONTEND_URL" else " or a /path")
            )
        allowed.append(Allowed(*split))
    return allowed


def is_allowed(url: object, allowlist: list[Allowed]) -> bool:
    """Whether a browser may be sent to ``url`` after login."""
    split = _split(url) if isinstance(url, str) else None
    return split is not None and any(entry.matches(*split) for entry in allowlist)
