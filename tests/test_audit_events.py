"""Every event type reachable today is recorded exactly once for its action, about the
right account, by the right actor, with the request's client IP and request id; none
holds a password, token, code or secret."""

from __future__ import annotations

import pytest

from audit_helpers import Trail, all_events, as_text
from auth_service.extensions import db
from auth_service.security import link_tokens
from auth_service.services import audit
from auth_service.services.accounts import find_by_email
from helpers import PASSWORD, WRONG_PASSWORD, bearer, claims
from mfa_helpers import STEP, first_step, totp

NEW_PASSWORD = "a brand new passphrase 7"


@pytest.fixture
def trail(in_db):
    return Trail(in_db)


def link_token(app, purpose, email="alice@example.com"):
    with app.app_context():
        return link_tokens.make_token(find_by_email(email), purpose)


def test_the_password_account_lifecycle(app, client, trail, auth, clock):
    signup = trail.call(client.post, "/auth/signup", json=auth_body())
    alice = signup.json["id"]
    trail.only("signup", alice, details={"method": "password"})

    token = trail.call(
        client.post, "/auth/verify-email", json={"token": link_token(app, link_tokens.VERIFY_EMAIL)}
    )
    assert token.status_code == 200
    trail.only("email_verified", alice)

    login = trail.call(client.post, "/auth/login", json=credentials())
    sid = claims(login.json["access_token"])["sid"]
    trail.only("login_succeeded", alice, session_id=sid)

    wrong = trail.call(client.post, "/auth/login", json=credentials(password=WRONG_PASSWORD))
    assert wrong.status_code == 401
    trail.only("login_failed", alice, details={"reason": "password"})

    unknown = trail.call(client.post, "/auth/login", json=credentials("nobody@example.com"))
    assert unknown.status_code == 401
    event = trail.only("login_failed", None)
    with app.app_context():
        key = audit.email_key("nobody@example.com")
    assert event.details == {"reason": "unknown_account", "email_key": key}

    headers = bearer(login.json["access_token"])
    changed = trail.call(
        client.put,
        "/auth/change-password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.json
    trail.only("password_changed", alice, actor_id=alice, session_id=sid)

    headers = bearer(changed.json["access_token"])
    other = client.post("/auth/login", json=credentials(password=NEW_PASSWORD)).json
    revoked = trail.call(
        client.delete,
        f"/auth/active-sessions/{claims(other['access_token'])['sid']}",
        headers=headers,
    )
    assert revoked.status_code == 204
    trail.only(
        "session_revoked", alice, actor_id=alice, session_id=claims(other["access_token"])["sid"]
    )

    logout = trail.call(
        client.post,
        "/auth/logout",
        headers=headers,
        json={"refresh_token": changed.json["refresh_token"]},
    )
    assert logout.status_code == 200
    trail.only(
        "logout", alice, actor_id=alice, session_id=claims(changed.json["access_token"])["sid"]
    )

    headers = bearer(
        client.post("/auth/login", json=credentials(password=NEW_PASSWORD)).json["access_token"]
    )
    everywhere = trail.call(client.post, "/auth/logout-all", headers=headers)
    assert everywhere.status_code == 200
    trail.only("logout_all", alice, actor_id=alice, details={"sessions": 1})

    forgot = trail.call(client.post, "/auth/forgot-password", json={"email": "alice@example.com"})
    assert forgot.status_code == 202
    trail.only("password_reset_requested", alice)

    reset = trail.call(
        client.post,
        "/auth/reset-password",
        json={"token": link_token(app, link_tokens.RESET_PASSWORD), "new_password": PASSWORD},
    )
    assert reset.status_code == 200, reset.json
    trail.only("password_reset", alice)

    headers = bearer(client.post("/auth/login", json=credentials()).json["access_token"])
    deleted = trail.call(client.delete, "/users/me", headers=headers, json={"password": PASSWORD})
    assert deleted.status_code == 204
    trail.only("account_deleted", alice, actor_id=alice)


def auth_body():
    return {
        "email": "alice@example.com",
        "username": "alice",
        "password": PASSWORD,
        "full_name": "Alice Example",
    }


def credentials(email="alice@example.com", password=PASSWORD):
    return {"email": email, "password": password}


def test_a_reused_refresh_token(client, trail, alice, clock):
    user_id = int(claims(alice["access_token"])["sub"])
    old = alice["refresh_token"]
    assert client.post("/auth/refresh", json={"refresh_token": old}).status_code == 200
    clock.tick(STEP)  # past the grace window: a reuse
    reused = trail.call(client.post, "/auth/refresh", json={"refresh_token": old})
    assert reused.status_code == 401
    trail.only("refresh_reuse_detected", user_id, actor_id=user_id, session_id=claims(old)["sid"])


def test_a_rolled_back_request_leaves_no_event(client, trail, auth, in_db):
    assert auth.signup().status_code == 201
    before = len(all_events(in_db))
    taken = trail.call(client.post, "/auth/signup", json={**auth_body(), "username": "bob"})
    assert taken.status_code == 409
    assert trail.recorded() == []
    assert len(all_events(in_db)) == before


def test_two_step_verification(client, trail, alice, clock):
    user_id = int(claims(alice["access_token"])["sub"])
    headers = bearer(alice["access_token"])
    started = client.post("/auth/mfa/totp", headers=headers).json
    verified = trail.call(
        client.post,
        "/auth/mfa/totp/verify",
        headers=headers,
        json={"factor_id": started["factor_id"], "code": totp(started["secret"])},
    )
    assert verified.status_code == 200, verified.json
    trail.only("mfa_enabled", user_id, actor_id=user_id, details={"factor": "totp"})
    clock.tick(STEP)

    mfa_token = first_step(client)
    wrong = trail.call(
        client.post, "/auth/login/mfa", json={"mfa_token": mfa_token, "code": "000000"}
    )
    assert wrong.status_code == 401
    trail.only("mfa_challenge_failed", user_id, details={"step": "login", "factor": "totp"})

    recovery = verified.json["recovery_codes"][0]
    signed_in = trail.call(
        client.post, "/auth/login/mfa", json={"mfa_token": mfa_token, "recovery_code": recovery}
    )
    assert signed_in.status_code == 200, signed_in.json
    types = sorted(event.type for event in trail.recorded())
    assert types == ["login_succeeded", "recovery_code_used"]

    aal2 = bearer(signed_in.json["access_token"])
    step_up = trail.call(client.post, "/auth/mfa/challenge", headers=aal2, json={"code": "000000"})
    assert step_up.status_code == 400
    details = {"step": "step_up", "factor": "totp"}
    trail.only("mfa_challenge_failed", user_id, actor_id=user_id, details=details)

    removed = trail.call(client.delete, f"/auth/mfa/factors/{started['factor_id']}", headers=aal2)
    assert removed.status_code == 204, removed.json
    trail.only("mfa_disabled", user_id, actor_id=user_id, details={"by_admin": False})


def test_a_superuser_acting_on_an_account_is_the_actor(
    client, trail, alice, superuser_headers, in_db
):
    user_id = int(claims(alice["access_token"])["sub"])
    root = int(claims(superuser_headers["Authorization"].split()[1])["sub"])
    off = trail.call(client.put, f"/users/{user_id}/deactivate", headers=superuser_headers)
    assert off.status_code == 200
    trail.only("user_deactivated", user_id, actor_id=root)
    on = trail.call(client.put, f"/users/{user_id}/activate", headers=superuser_headers)
    assert on.status_code == 200
    trail.only("user_activated", user_id, actor_id=root)
    again = trail.call(client.put, f"/users/{user_id}/activate", headers=superuser_headers)
    assert again.status_code == 200
    assert trail.recorded() == []  # no change, no event


def test_rate_limited_is_sampled_once_per_key_per_minute(client, trail, auth, limits, in_db):
    limits(LOGIN_PER_IP="2 per minute")
    answers = [
        trail.call(client.post, "/auth/login", json=credentials()).status_code for _ in range(5)
    ]
    assert answers.count(429) == 3
    limited = [event for event in all_events(in_db) if event.type == "rate_limited"]
    assert len(limited) == 1
    assert limited[0].details == {"limit": "login-ip"}
    assert limited[0].ip == "198.51.100.7"


def test_no_event_holds_a_secret(app, client, trail, auth, in_db, clock):
    """Run the flows that handle secrets, then search every column of every event."""
    secrets = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD]
    auth.signup()
    verify = link_token(app, link_tokens.VERIFY_EMAIL)
    client.post("/auth/verify-email", json={"token": verify})
    tokens = client.post("/auth/login", json=credentials()).json
    client.post("/auth/login", json=credentials(password=WRONG_PASSWORD))
    headers = bearer(tokens["access_token"])
    started = client.post("/auth/mfa/totp", headers=headers).json
    enabled = client.post(
        "/auth/mfa/totp/verify",
        headers=headers,
        json={"factor_id": started["factor_id"], "code": totp(started["secret"])},
    ).json
    clock.tick(STEP)
    mfa_token = first_step(client)
    client.post("/auth/login/mfa", json={"mfa_token": mfa_token, "code": "123456"})
    code = totp(started["secret"])
    signed_in = client.post("/auth/login/mfa", json={"mfa_token": mfa_token, "code": code}).json
    client.post("/auth/refresh", json={"refresh_token": signed_in["refresh_token"]})
    clock.tick(STEP)
    client.post("/auth/refresh", json={"refresh_token": signed_in["refresh_token"]})
    client.post("/auth/forgot-password", json={"email": "alice@example.com"})
    reset = link_token(app, link_tokens.RESET_PASSWORD)
    client.post("/auth/reset-password", json={"token": reset, "new_password": NEW_PASSWORD})
    secrets += [
        verify,
        reset,
        mfa_token,
        code,
        started["secret"],
        *enabled["recovery_codes"],
        tokens["access_token"],
        tokens["refresh_token"],
        signed_in["access_token"],
        signed_in["refresh_token"],
    ]
    events = all_events(in_db)
    assert len({event.type for event in events}) >= 8
    with app.app_context():
        secrets.append(app.config["SECRET_KEY"])
        db.session.remove()
    leaked = [(event.type, s) for event in events for s in secrets if s and s in as_text(event)]
    assert leaked == []
