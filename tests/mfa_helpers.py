"""Helpers of the two-step verification tests: enrol an account, compute its codes (pyotp,
from the secret the enrolment returns), sign in in two steps, read the MFA rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import MfaChallenge, MfaFactor, RecoveryCode, Session
from auth_service.services import sessions
from auth_service.services.accounts import find_by_email
from helpers import PASSWORD, bearer, login

COOKIE_PATH = "/auth/login/mfa"  # where the mfa cookie goes, and the only place

STEP = timedelta(seconds=30)  # RFC 6238's time step, as authenticator apps use it
ENABLED = "Two-step verification was turned on"
DISABLED = "Two-step verification was turned off"
RECOVERY_USED = "A recovery code was used"


def totp(secret: str, offset: int = 0) -> str:
    """The code an authenticator app shows now (freezegun's now, when frozen), or
    ``offset`` steps away."""
    return pyotp.TOTP(secret).at(datetime.now(UTC), counter_offset=offset)


def start_enrolment(client, access_token: str):
    """POST /auth/mfa/totp."""
    return client.post("/auth/mfa/totp", headers=bearer(access_token))


def verify(client, access_token: str, factor_id: str, code: str):
    """POST /auth/mfa/totp/verify."""
    return client.post(
        "/auth/mfa/totp/verify",
        headers=bearer(access_token),
        json={"factor_id": factor_id, "code": code},
    )


def enrol(client, access_token: str) -> dict:
    """Enrol and verify an authenticator app with the code of the current step:
    ``{"secret", "factor_id", **the verification's answer}`` (recovery codes, aal2 pair)."""
    started = start_enrolment(client, access_token)
    assert started.status_code == 201, started.json
    secret, factor_id = started.json["secret"], started.json["factor_id"]
    verified = verify(client, access_token, factor_id, totp(secret))
    assert verified.status_code == 200, verified.json
    return {"secret": secret, "factor_id": factor_id, **verified.json}


def first_step(client, email="alice@example.com", password=PASSWORD) -> str:
    """The password step of a login that must ask for a second factor; its mfa token."""
    response = login(client, email, password)
    assert response.status_code == 200, response.json
    assert response.json["mfa_required"] is True, response.json
    return response.json["mfa_token"]


def second_step(client, mfa_token: str | None, headers=None, **code):
    """POST /auth/login/mfa with ``code=...`` or ``recovery_code=...``."""
    body = {"mfa_token": mfa_token, **code} if mfa_token is not None else code
    return client.post("/auth/login/mfa", json=body, headers=headers or {})


def cookie_step(client, email="alice@example.com") -> str:
    """The state a Google/GitHub callback leaves a browser in: the mfa token of a first
    step in the ``mfa_token`` cookie. Returns its CSRF value, as the page gets it from
    GET /auth/login/mfa."""
    client.set_cookie("mfa_token", first_step(client, email), path=COOKIE_PATH)
    pending = client.get(COOKIE_PATH)
    assert pending.status_code == 200, pending.json
    return pending.json["csrf_token"]


def challenge(client, access_token: str, **code):
    """POST /auth/mfa/challenge (step-up) with ``code=...`` or ``recovery_code=...``."""
    return client.post("/auth/mfa/challenge", headers=bearer(access_token), json=code)


# --- sessions that have not proven a second factor --------------------------------------


def aal1_session(app, email="alice@example.com") -> dict:
    """A password-only session of an account that has two-step verification on, as one
    that began before it was turned on would be: ``{"access_token", "refresh_token"}``."""
    with app.test_request_context():
        pair = sessions.start_session(find_by_email(email), [sessions.PASSWORD])
        db.session.commit()
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token}


# --- rows ------------------------------------------------------------------------------


def factor_rows(in_db, user_id: int | None = None) -> list[MfaFactor]:
    def run():
        query = sa.select(MfaFactor).order_by(MfaFactor.created_at)
        if user_id is not None:
            query = query.where(MfaFactor.user_id == user_id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows

    return in_db(run)


def recovery_rows(in_db, user_id: int | None = None) -> list[RecoveryCode]:
    def run():
        query = sa.select(RecoveryCode).order_by(RecoveryCode.id)
        if user_id is not None:
            query = query.where(RecoveryCode.user_id == user_id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows

    return in_db(run)


def challenge_rows(in_db) -> list[MfaChallenge]:
    def run():
        rows = db.session.scalars(sa.select(MfaChallenge)).all()
        db.session.expunge_all()
        return rows

    return in_db(run)


def session_rows(in_db, user_id: int | None = None) -> list[Session]:
    def run():
        query = sa.select(Session).order_by(Session.created_at)
        if user_id is not None:
            query = query.where(Session.user_id == user_id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows

    return in_db(run)


def session_row(in_db, sid: str) -> Session:
    def run():
        row = db.session.get(Session, sid)
        db.session.expunge(row)
        return row

    return in_db(run)
