"""Google (OpenID Connect) and GitHub (OAuth 2) through authlib's Flask client.

Each enabled provider is registered on the app's own authlib registry with state, PKCE S256
and, for Google, a nonce; the authorisation state lives in the Flask session
cookie until the callback spends it. ``fetch_profile`` turns a callback into a
``ProviderProfile`` holding only what the provider vouches for, and every way a
provider can fail (refusal, bad state, bad ID token, timeout, garbage) into an
APIError in the shared shape: 400, 401, 403 or 502, never a 500.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, request
from flask.sessions import SecureCookieSessionInterface
from joserfc.errors import JoseError

from auth_service.errors import APIError, Error
from auth_service.security import redirects
from auth_service.security.addresses import canonical_or_none
from config import ConfigError

log = logging.getLogger(__name__)

LABELS = {"google": "Google", "github": "GitHub"}
PROVIDERS = tuple(LABELS)
EXTENSION_KEY = "auth_service.integrations.oauth_providers"
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
# Google documents both spellings of its issuer in ID tokens.
ISSUER_ALIASES = {"https://accounts.google.com": ["accounts.google.com"]}
SUBJECT_MAX = 255  # oauth_accounts.subject
GITHUB_API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


@dataclass
class ProviderProfile:
    """Who the provider says signed in. ``email`` is set only when the provider verified it."""

    provider: str
    subject: str
    email: str | None
    name: str | None = None
    avatar_url: str | None = None
    username_hint: str | None = None


def enabled_providers(config) -> list[str]:
    """The providers whose client id and secret are both configured."""
    return [
        name
        for name in PROVIDERS
        if config.get(f"{name.upper()}_CLIENT_ID") and config.get(f"{name.upper()}_CLIENT_SECRET")
    ]


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only by requests that carry the cookie.

    Only the Google/GitHub login flow uses the session. Flask's own interface builds
    its signing serializer on every request, to find that most of them (every API
    call) have no session cookie; this one answers those with an empty session first,
    and without parsing a Cookie header where there is none.
    """

    def open_session(self, app: Flask, request):
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ
            or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Register the enabled providers and check the post-login redirect settings."""
    entries = list(app.config["OAUTH_REDIRECT_ALLOWLIST"])
    if app.config["DEMO_ENABLED"]:
        entries.append("/demo")  # the example SPA's provider buttons come back to it
    app.extensions["auth_service.redirect_allowlist"] = redirects.parse_allowlist(
        entries, app.config["FRONTEND_URL"]
    )
    # The OAuth state rides in the session cookie across the provider's redirect back,
    # a cross-site top-level GET: SameSite=Strict would drop it, Lax keeps it.
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.config["JWT_COOKIE_SECURE"]
    app.session_interface = SessionInterface()
    # A registry per app: authlib's caches one client per name, and a second app of the
    # process (the test suite builds many) must not reuse the first one's.
    registry = OAuth(app)
    app.extensions[EXTENSION_KEY] = {
        name: registry.register(name, **_settings(app.config, name))
        for name in enabled_providers(app.config)
    }


def _settings(config, name: str) -> dict:
    common = {"code_challenge_method": "S256", "default_timeout": config["OAUTH_HTTP_TIMEOUT"]}
    if name == "google":
        if expected_issuer(config["GOOGLE_DISCOVERY_URL"]) is None:
            raise ConfigError(f"GOOGLE_DISCOVERY_URL must end with {DISCOVERY_SUFFIX}")
        return {
            "client_id": config["GOOGLE_CLIENT_ID"],
            "client_secret": config["GOOGLE_CLIENT_SECRET"],
            "server_metadata_url": config["GOOGLE_DISCOVERY_URL"],
            "client_kwargs": {"scope": "openid email profile", **common},
        }
    return {
        "client_id": config["GITHUB_CLIENT_ID"],
        "client_secret": config["GITHUB_CLIENT_SECRET"],
        "authorize_url": config["GITHUB_AUTHORIZE_URL"],
        "access_token_url": config["GITHUB_TOKEN_URL"],
        "api_base_url": config["GITHUB_API_URL"].rstrip("/") + "/",
        # GitHub documents the client credentials as form parameters.
        "client_kwargs": {
            "scope": "read:user user:email",
            "token_endpoint_auth_method": "client_secret_post",
            **common,
        },
    }


def expected_issuer(discovery_url: str) -> str | None:
    """The issuer a discovery URL must announce (OpenID Connect Discovery 1.0, 4.3)."""
    if not discovery_url.endswith(DISCOVERY_SUFFIX):
        return None
    return discovery_url[: -len(DISCOVERY_SUFFIX)]


def client_for(name: str):
    """The provider's authlib client; 404 when it is not configured here."""
    client = current_app.extensions[EXTENSION_KEY].get(name)
    if client is None:
        raise APIError(Error.PROVIDER_DISABLED, label=LABELS[name])
    return client


@contextmanager
def provider_errors(name: str):
    """Turn whatever a provider exchange raises into a clean APIError."""
    label = LABELS[name]
    try:
        yield
    except MismatchingStateError:
        raise APIError(Error.INVALID_STATE) from None
    except OAuthError as exc:
        # The token endpoint refused the code: already spent, expired, or not ours.
        log.warning("%s token exchange refused: %s", name, exc.error)
        raise APIError(Error.PROVIDER_REJECTED, label=label, reason=_code(exc.error)) from None
    except JoseError as exc:
        log.warning("%s ID token refused: %s", name, exc)
        raise APIError(Error.INVALID_ID_TOKEN, label=label, reason=_code(exc.error)) from None
    except (requests.Timeout, requests.ConnectionError):
        raise APIError(Error.PROVIDER_UNREACHABLE, label=label) from None
    except (requests.RequestException, ValueError, TypeError, KeyError, RuntimeError) as exc:
        # Malformed JSON or documents (authlib raises RuntimeError for a discovery
        # document without an endpoint it needs).
        log.warning("%s answered unexpectedly: %r", name, exc, exc_info=True)
        raise APIError(Error.PROVIDER_ERROR, label=label) from None


def _code(value: object) -> str:
    """A provider-supplied error code, safe to echo: short, plain characters only."""
    text = str(value or "error")[:40]
    return "".join(ch for ch in text if ch.isascii() and (ch.isalnum() or ch in "_-.")) or "error"


def authorize_redirect(name: str, redirect_uri: str):
    """The redirect to the provider's consent page, and the state it carries."""
    client = client_for(name)
    state = generate_token(32)
    with provider_errors(name):
        return client.authorize_redirect(redirect_uri, state=state), state


def fetch_profile(name: str) -> ProviderProfile:
    """Complete the callback: check state, exchange the code, verify what came back."""
    client = client_for(name)
    label = LABELS[name]
    if "error" in request.args:
        raise APIError(Error.PROVIDER_DENIED, label=label, reason=_code(request.args["error"]))
    if not request.args.get("code"):
        raise APIError(Error.MISSING_CODE, label=label)
    with provider_errors(name):
        if name == "google":
            return _google_profile(client)
        return _github_profile(client)


def _google_profile(client) -> ProviderProfile:
    metadata = client.load_server_metadata()
    issuer = expected_issuer(current_app.config["GOOGLE_DISCOVERY_URL"])
    if metadata.get("issuer") != issuer:
        log.error(
            "discovery document announces issuer %r, expected %r", metadata.get("issuer"), issuer
        )
        raise APIError(Error.PROVIDER_ERROR, "Google's discovery document names another issuer.")
    issuers = [issuer, *ISSUER_ALIASES.get(issuer, [])]
    # RFC 9207: a provider that names itself in the callback must be the one we asked.
    if "iss" in request.args and request.args["iss"] not in issuers:
        raise APIError(Error.ISSUER_MISMATCH)
    # authlib checks the signature, nonce, exp and azp; iss and aud are pinned here
    # (it leaves aud unchecked without claims options).
    token = client.authorize_access_token(
        claims_options={
            "iss": {"essential": True, "values": issuers},
            "aud": {"essential": True, "value": client.client_id},
            "sub": {"essential": True},
        }
    )
    claims = token.get("userinfo")
    if not claims:
        raise APIError(Error.INVALID_ID_TOKEN, "Google's answer carries no ID token.")
    subject = claims["sub"]
    if len(subject) > SUBJECT_MAX:
        raise ValueError("Google subject too long")
    verified = claims.get("email_verified") in (True, "true")
    profile = ProviderProfile(
        provider="google",
        subject=subject,
        email=_email(claims.get("email")) if verified else None,
        name=_text(claims.get("name"), 100),
        avatar_url=_url(claims.get("picture")),
        username_hint=_text(claims.get("email"), 254, "").split("@")[0]
        or _text(claims.get("name"), 100),
    )
    if (profile.name is None or profile.avatar_url is None) and metadata.get("userinfo_endpoint"):
        info = client.userinfo(token=token)
        # OpenID Connect Core 5.3.2: a userinfo answer for another subject is ignored.
        if info.get("sub") == subject:
            profile.name = profile.name or _text(info.get("name"), 100)
            profile.avatar_url = profile.avatar_url or _url(info.get("picture"))
    return profile


def _github_profile(client) -> ProviderProfile:
    token = client.authorize_access_token()
    response = client.get("user", token=token, headers=GITHUB_API_HEADERS)
    response.raise_for_status()
    user = response.json()
    if not isinstance(user, dict) or type(user.get("id")) is not int:
        raise ValueError("GitHub /user has no numeric id")
    return ProviderProfile(
        provider="github",
        subject=str(user["id"]),
        email=_github_verified_primary(client, token),
        name=_text(user.get("name"), 100),
        avatar_url=_url(user.get("avatar_url")),
        username_hint=_text(user.get("login"), 100),
    )


def _github_verified_primary(client, token) -> str | None:
    """The address GitHub lists as primary *and* verified; ``/user.email`` is never used.

    ``/user.email`` is the public profile address, which anyone can set to any
    address without verifying it.
    """
    response = client.get("user/emails", token=token, headers=GITHUB_API_HEADERS)
    if response.status_code in (403, 404):  # user:email scope not granted
        return None
    response.raise_for_status()
    emails = response.json()
    if not isinstance(emails, list):
        raise ValueError("GitHub /user/emails is not a list")
    for entry in emails:
        if isinstance(entry, dict) and entry.get("primary") is True:
            return _email(entry.get("email")) if entry.get("verified") is True else None
    return None


def _text(value: object, limit: int, default=None):
    """A provider string trimmed to ``limit`` characters, without NULs; ``default`` otherwise."""
    if not isinstance(value, str) or not value.strip():
        return default
    return value.replace("\x00", "").strip()[:limit]


def _email(value: object) -> str | None:
    """A plausible email address in its canonical form (auth_service.security.addresses); None otherwise."""
    email = canonical_or_none(value)
    if email is None or len(email) > 254 or email.count("@") != 1:
        return None
    return email


def _url(value: object) -> str | None:
    """An http(s) avatar URL that fits the column; None otherwise."""
    url = _text(value, 501)
    if url is None or len(url) > 500 or not url.startswith(("https://", "http://")):
        return None
    return url
