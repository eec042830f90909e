"""Helpers of the passkey tests: the ceremonies through the API with the software
authenticator of passkey_authenticator.py, and the passkey rows."""

from __future__ import annotations

import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import Passkey, WebAuthnChallenge
from helpers import bearer
from passkey_authenticator import SoftAuthenticator

ADDED = "A passkey was added to your account"


def registration_options(client, access_token: str, **body) -> dict:
    response = client.post(
        "/auth/passkeys/register/options", headers=bearer(access_token), json=body
    )
    assert response.status_code == 200, response.json
    return response.json


def register(client, access_token: str, authenticator: SoftAuthenticator, **body):
    """Both requests of a registration; the second's response."""
    options = registration_options(client, access_token, **body)
    credential = authenticator.create(options)
    return client.post("/auth/passkeys/register", headers=bearer(access_token), json=credential)


def add_passkey(client, access_token: str, authenticator: SoftAuthenticator, **body) -> dict:
    """A registered passkey: the 201's body (id, name, created_at, a fresh aal2 pair)."""
    response = register(client, access_token, authenticator, **body)
    assert response.status_code == 201, response.json
    return response.json


def login_options(client, email: str | None = None) -> dict:
    response = client.post("/auth/passkeys/login/options", json={"email": email} if email else {})
    assert response.status_code == 200, response.json
    return response.json


def assertion(client, authenticator: SoftAuthenticator, email: str | None = None, **kwargs):
    """Fresh options, and the authenticator's answer to them."""
    return authenticator.get(login_options(client, email), **kwargs)


def passkey_login(client, credential: dict):
    return client.post("/auth/passkeys/login", json=credential)


def passkey_rows(in_db, user_id: int | None = None) -> list[Passkey]:
    def run():
        query = sa.select(Passkey).order_by(Passkey.created_at)
        if user_id is not None:
            query = query.where(Passkey.user_id == user_id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows

    return in_db(run)


def challenge_rows(in_db) -> list[WebAuthnChallenge]:
    def run():
        rows = db.session.scalars(sa.select(WebAuthnChallenge)).all()
        db.session.expunge_all()
        return rows

    return in_db(run)
