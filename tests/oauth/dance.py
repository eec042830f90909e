"""The browser's part of a provider login, step by step.

Our app is driven through the Flask test client; the provider is a real HTTP
server, visited with ``requests`` exactly where the app's redirect points.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import OAuthAccount, RefreshToken, User
from helpers import ERROR_KEYS, PASSWORD, row_count


def begin(client, provider: str, **query) -> str:
    """GET /auth/{provider}/login; the provider URL it redirects to."""
    response = client.get(f"/auth/{provider}/login", query_string=query)
    assert response.status_code == 302, response.json
    return response.headers["Location"]


def at_provider(location: str) -> str:
    """Visit the provider's authorisation URL; the callback URL it sends the browser back to."""
    response = requests.get(location, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def path_of(callback_url: str) -> str:
    """The callback URL as a path + query for the test client (it must point at us)."""
    parts = urlsplit(callback_url)
    assert (parts.scheme, parts.netloc) == ("http", "localhost"), callback_url
    return f"{parts.path}?{parts.query}"


def callback_for(client, provider: str, **query) -> str:
    """Run the login up to the provider's redirect back; the callback path + query."""
    return path_of(at_provider(begin(client, provider, **query)))


def sign_in(client, provider: str, **query):
    """The whole dance; the callback's response."""
    return client.get(callback_for(client, provider, **query))


def start_link(client, provider: str, headers: dict, password: str | None = PASSWORD, **query):
    """POST /auth/{provider}/link as the signed-in user of ``headers``, confirmed with
    ``password`` (None: no body)."""
    body = {"json": {"password": password}} if password is not None else {}
    return client.post(f"/auth/{provider}/link", headers=headers, query_string=query, **body)


def link_from_session(client, provider: str, headers: dict, **query):
    """Link a provider from a signed-in session: start, the provider, then the callback."""
    started = start_link(client, provider, headers, **query)
    assert started.status_code == 200, started.json
    return client.get(path_of(at_provider(started.json["authorization_url"])))


def query_of(url: str) -> dict[str, str]:
    """A URL's query parameters (single values)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_error(response, status: int, error: str):
    """The shared JSON error shape with this status and code."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert ERROR_KEYS <= set(response.json)
    assert (response.json["code"], response.json["error"]) == (status, error)


def assert_nothing_created(in_db):
    """No account, identity or session came out of the attempt."""
    assert row_count(in_db, User) == 0
    assert row_count(in_db, OAuthAccount) == 0
    assert row_count(in_db, RefreshToken) == 0


def identities_of(in_db, email: str) -> list[tuple[str, str]]:
    """(provider, subject) of every identity linked to the account with ``email``."""
    return in_db(
        lambda: [
            tuple(row)
            for row in db.session.execute(
                sa.select(OAuthAccount.provider, OAuthAccount.subject)
                .join(User)
                .where(User.email == email)
                .order_by(OAuthAccount.provider)
            ).all()
        ]
    )
