"""Account takeover before the owner arrives (issue 18): an attacker signs up with the
victim's address; a provider login by the victim must not leave the attacker inside.
Also linking a provider from a signed-in session, and the "identity linked" email."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from freezegun import freeze_time

from auth_service.persistence.models import OAuthAccount, RefreshToken
from auth_service.services import sessions
from dance import (
    assert_error,
    at_provider,
    identities_of,
    link_from_session,
    path_of,
    sign_in,
    start_link,
)
from helpers import (
    LOGIN_TIME,
    PASSWORD,
    bearer,
    claims,
    mark_email_verified,
    me,
    refresh,
    row_count,
    stored_user,
    token_rows,
)
from tests.mail.mail_helpers import html_part, link_in, path_and_query, text_part, token_of

VERIFY = "Verify your email address"
PROVIDERS = {"google": ("Google", "victor@example.com"), "github": ("GitHub", "octo@example.com")}


def linked_subject(provider: str) -> str:
    return f"{PROVIDERS[provider][0]} was linked to your account"


@pytest.fixture(params=list(PROVIDERS))
def provider(request):
    return request.param


def pre_register(client, auth, smtp, email: str) -> dict:
    """The attacker signs up with the victim's address; a mail scanner opens the link many
    times, then something presses its button (POST): the address counts as verified."""
    assert auth.signup(email=email, username="mallory").status_code == 201
    link = link_in(smtp.last(email, VERIFY))
    for _ in range(3):
        assert client.get(path_and_query(link)).status_code == 200
        assert client.head(path_and_query(link)).status_code == 200
    response = client.post("/auth/verify-email", json={"token": token_of(link)})
    assert response.json["status"] == "verified"
    attacker = auth.login(email)
    assert attacker.status_code == 200
    return attacker.json


def test_the_victims_provider_login_throws_the_attacker_out(
    client, oauth_app, auth, smtp, in_db, provider
):
    label, email = PROVIDERS[provider]
    attacker = pre_register(client, auth, smtp, email)

    victim = oauth_app.test_client()  # another browser
    response = sign_in(victim, provider)

    assert response.status_code == 200, response.json
    assert identities_of(in_db, email) == [
        (provider, "google-sub-1" if provider == "google" else "583231")
    ]
    # The attacker's password, refresh token and access token are all dead.
    assert_error(auth.login(email), 401, "invalid_credentials")
    assert_error(refresh(client, attacker["refresh_token"]), 401, "token_revoked")
    assert me(client, attacker["access_token"]).status_code == 401
    user = stored_user(in_db, email)
    assert user.password_hash is None
    assert {
        t.revoked_reason
        for t in token_rows(in_db, user.id)
        if t.jti != claims(response.json["refresh_token"])["jti"]
    } == {"identity_linked"}
    # The victim is in, now and at the next provider login.
    assert me(victim, response.json["access_token"]).json["email"] == email
    again = sign_in(oauth_app.test_client(), provider)
    assert again.status_code == 200
    assert me(victim, again.json["access_token"]).status_code == 200
    notice = smtp.last(email, linked_subject(provider))
    assert f"{label} was linked to the account for {email}" in text_part(notice)
    assert "password was removed" in text_part(notice)
    assert "password was removed" in html_part(notice)
    assert "token" not in text_part(notice)
    assert len(smtp.to(email, linked_subject(provider))) == 1  # the returning login sends none


def test_a_scanner_alone_leaves_the_account_unverified_and_unlinked(
    client, oauth_app, auth, smtp, in_db
):
    """Nobody pressed the button: the account stays unverified, so nothing is linked."""
    assert auth.signup(email="victor@example.com", username="mallory").status_code == 201
    link = link_in(smtp.last("victor@example.com", VERIFY))
    for _ in range(3):
        client.get(path_and_query(link))
        client.head(path_and_query(link))
    assert stored_user(in_db, "victor@example.com").email_verified is None

    assert_error(sign_in(oauth_app.test_client(), "google"), 409, "account_exists_unverified")

    assert row_count(in_db, OAuthAccount) == 0
    assert smtp.to("victor@example.com", linked_subject("google")) == []


def test_a_password_less_account_keeps_its_sessions_when_another_provider_links(
    client, google, smtp, in_db
):
    google.user["email"] = "octo@example.com"
    first = sign_in(client, "google").json  # a Google-created account, no password

    assert sign_in(client, "github").status_code == 200

    assert refresh(client, first["refresh_token"]).status_code == 200
    assert me(client, first["access_token"]).status_code == 200
    notice = smtp.last("octo@example.com", linked_subject("github"))
    assert "password was removed" not in text_part(notice)


# --- linking from a signed-in session -------------------------------------------------


@pytest.fixture
def victor(client, auth, smtp):
    """Victor signed up with a password and verified his address; his Authorization header."""
    assert auth.signup(email="victor@example.com", username="vic").status_code == 201
    token = token_of(link_in(smtp.last("victor@example.com", VERIFY)))
    assert client.post("/auth/verify-email", json={"token": token}).status_code == 200
    login = auth.login("victor@example.com")
    return {"headers": bearer(login.json["access_token"]), **login.json}


def test_a_signed_in_user_links_google_and_keeps_the_password(client, auth, smtp, victor, in_db):
    response = link_from_session(client, "google", victor["headers"])

    assert response.status_code == 200
    assert response.json == {"message": "Google is now linked to your account."}
    assert "refresh_token" not in response.headers.get("Set-Cookie", "")
    assert identities_of(in_db, "victor@example.com") == [("google", "google-sub-1")]
    assert auth.login("victor@example.com", PASSWORD).status_code == 200
    assert me(client, victor["access_token"]).status_code == 200
    assert refresh(client, victor["refresh_token"]).status_code == 200
    notice = smtp.last("victor@example.com", linked_subject("google"))
    assert "password was removed" not in text_part(notice)
    # From now on the Google login opens the same account, password intact.
    assert sign_in(client, "google").status_code == 200
    assert auth.login("victor@example.com", PASSWORD).status_code == 200


def test_linking_from_a_session_may_use_another_address(client, google, victor, in_db):
    google.user["email"] = "victor.work@example.com"

    assert link_from_session(client, "google", victor["headers"]).status_code == 200

    assert identities_of(in_db, "victor@example.com") == [("google", "google-sub-1")]


def test_a_link_redirects_to_the_frontend_without_a_session(make_oauth_app, auth, smtp, in_db):
    app = make_oauth_app(FRONTEND_URL="https://app.example.test")
    browser = app.test_client()
    assert (
        browser.post(
            "/auth/signup",
            json={"email": "victor@example.com", "username": "vic", "password": PASSWORD},
        ).status_code
        == 201
    )
    mark_email_verified(in_db, "victor@example.com")
    login = browser.post(
        "/auth/login", json={"email": "victor@example.com", "password": PASSWORD}
    ).json
    sessions = row_count(in_db, RefreshToken)

    response = link_from_session(browser, "google", bearer(login["access_token"]))

    assert response.status_code == 302
    assert response.headers["Location"] == "https://app.example.test"
    assert "refresh_token" not in response.headers.get("Set-Cookie", "")
    assert row_count(in_db, RefreshToken) == sessions


def test_linking_needs_a_verified_address(client, auth, smtp, in_db):
    """Else an attacker who pre-registered the address could attach a provider of their own
    that would outlive the owner's password reset."""
    tokens = auth.signup_and_login(email="victor@example.com", username="mallory")

    response = link_from_session(client, "google", bearer(tokens["access_token"]))

    assert_error(response, 409, "email_unverified")
    assert row_count(in_db, OAuthAccount) == 0
    assert smtp.to("victor@example.com", linked_subject("google")) == []


def test_an_identity_of_another_account_is_not_linked(
    client, oauth_app, google, victor, smtp, in_db
):
    google.user["email"] = "someone@example.com"
    assert sign_in(oauth_app.test_client(), "google").status_code == 200  # someone's account

    assert_error(link_from_session(client, "google", victor["headers"]), 409, "identity_in_use")
    assert identities_of(in_db, "victor@example.com") == []


def test_a_second_identity_of_the_same_provider_is_refused(client, google, victor, in_db):
    assert link_from_session(client, "google", victor["headers"]).status_code == 200
    google.user["sub"] = "google-sub-2"

    assert_error(
        link_from_session(client, "google", victor["headers"]), 409, "provider_already_linked"
    )
    assert identities_of(in_db, "victor@example.com") == [("google", "google-sub-1")]


def test_a_password_change_meanwhile_voids_the_link(client, auth, victor, in_db):
    started = start_link(client, "google", victor["headers"])
    callback = path_of(at_provider(started.json["authorization_url"]))
    assert (
        client.put(
            "/auth/change-password",
            headers=victor["headers"],
            json={"current_password": PASSWORD, "new_password": "another long passphrase"},
        ).status_code
        == 200
    )

    assert_error(client.get(callback), 401, "session_ended")
    assert row_count(in_db, OAuthAccount) == 0


def test_a_logout_meanwhile_voids_the_link(client, victor, in_db):
    started = start_link(client, "google", victor["headers"])
    callback = path_of(at_provider(started.json["authorization_url"]))
    assert client.post("/auth/logout-all", headers=victor["headers"]).status_code == 200

    assert_error(client.get(callback), 401, "session_ended")
    assert row_count(in_db, OAuthAccount) == 0


def test_linking_needs_an_access_token(client):
    assert_error(client.post("/auth/google/link"), 401, "authorization_required")


def test_a_link_started_in_one_browser_cannot_finish_in_another(client, oauth_app, victor, in_db):
    """The state rides in the browser's session cookie: a stranger's browser completing the
    callback (login CSRF) links nothing."""
    started = start_link(client, "google", victor["headers"])
    callback = path_of(at_provider(started.json["authorization_url"]))

    assert_error(oauth_app.test_client().get(callback), 400, "invalid_state")
    assert row_count(in_db, OAuthAccount) == 0


def test_link_refuses_a_next_off_the_allow_list(client, victor):
    assert_error(
        start_link(client, "google", victor["headers"], next="https://evil.example/"),
        400,
        "invalid_redirect",
    )


# --- an attacker refreshing while the victim signs in ---------------------------------


def test_an_attacker_refreshing_in_a_loop_does_not_survive_the_link(oauth_app, auth, google, in_db):
    """The link bumps the token version in the same transaction that revokes: whatever
    child a refresh in flight manages to write is dead the moment the link commits."""
    for attempt in range(20):
        email = f"victim{attempt}@example.com"
        attacker = auth.signup_and_login(email=email, username=f"mallory{attempt}")
        mark_email_verified(in_db, email)
        google.user.update(sub=f"google-sub-race-{attempt}", email=email)
        latest = dict(attacker)
        stop = threading.Event()

        def keep_refreshing():
            client = oauth_app.test_client()
            while not stop.is_set():
                response = refresh(client, latest["refresh_token"])
                if response.status_code != 200:
                    return
                latest.update(response.json)

        with ThreadPoolExecutor(max_workers=1) as pool:
            loop = pool.submit(keep_refreshing)
            victim = sign_in(oauth_app.test_client(), "google")
            stop.set()
            loop.result(timeout=30)

        assert victim.status_code == 200, victim.json
        client = oauth_app.test_client()
        assert refresh(client, latest["refresh_token"]).status_code == 401, attempt
        assert me(client, latest["access_token"]).status_code == 401, attempt
        assert me(client, victim.json["access_token"]).status_code == 200


# --- linking needs more than an access token -------------------------------------------------


@pytest.mark.parametrize(
    "password, error", [(None, "password_required"), ("not his password", "invalid_password")]
)
def test_a_stolen_access_token_cannot_start_a_link(oauth_app, victor, in_db, password, error):
    """Mallory holds only Victor's access token: she cannot attach her Google account."""
    mallory = oauth_app.test_client()

    response = start_link(mallory, "google", victor["headers"], password=password)

    assert_error(response, 400, error)
    assert row_count(in_db, OAuthAccount) == 0


def test_a_passwordless_account_links_only_soon_after_signing_in(client, google, github, in_db):
    with freeze_time(LOGIN_TIME) as frozen:
        signed_in = sign_in(client, "github").json  # a new account, no password
        headers = bearer(signed_in["access_token"])
        frozen.tick(timedelta(minutes=6))
        refreshed = refresh(client, signed_in["refresh_token"]).json  # a later token, same sign-in

        late = start_link(client, "google", bearer(refreshed["access_token"]), password=None)
        frozen.move_to(LOGIN_TIME + timedelta(minutes=4))
        soon = start_link(client, "google", headers, password=None)

    assert_error(late, 401, "reauthentication_required")
    assert soon.status_code == 200


def test_a_logout_all_landing_as_the_link_finishes_voids_it(client, victor, in_db, monkeypatch):
    """The session is held by a write, not checked by a read: a logout-all committed just
    before that write makes it match nothing."""
    started = start_link(client, "google", victor["headers"])
    callback = path_of(at_provider(started.json["authorization_url"]))
    hold = sessions.hold_live_session

    def logout_all_first(*args):
        other = client.application.test_client()
        assert other.post("/auth/logout-all", headers=victor["headers"]).status_code == 200
        return hold(*args)

    monkeypatch.setattr(sessions, "hold_live_session", logout_all_first)

    assert_error(client.get(callback), 401, "session_ended")
    assert row_count(in_db, OAuthAccount) == 0
