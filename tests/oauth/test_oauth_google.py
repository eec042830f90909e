"""Sign in with Google (OpenID Connect) against a real provider process on 127.0.0.1."""

from __future__ import annotations

import sqlalchemy as sa

from auth_service.extensions import db
from auth_service.persistence.models import OAuthAccount, RefreshToken, User
from config import DevelopmentConfig, ProductionConfig, TestingConfig
from dance import (
    assert_error,
    assert_nothing_created,
    at_provider,
    begin,
    identities_of,
    path_of,
    query_of,
    sign_in,
)
from fake_provider import CLIENT_ID, app_settings, s256
from helpers import (
    PRODUCTION_SECRETS,
    bearer,
    claims,
    mark_email_verified,
    me,
    row_count,
    set_cookies,
    stored_user,
)


def test_login_redirects_to_the_provider_with_state_nonce_and_pkce(client, google):
    location = begin(client, "google")

    assert location.startswith(f"{google.base_url}/authorize?")
    query = query_of(location)
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["scope"].split() == ["openid", "email", "profile"]
    assert query["redirect_uri"] == "http://localhost/auth/google/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 16
    assert "code_verifier" not in query


def test_first_login_creates_a_passwordless_user_and_a_session(client, google, in_db):
    response = sign_in(client, "google")

    assert response.status_code == 200, response.json
    assert set(response.json) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "csrf_token",
    }
    cookies = set_cookies(response)
    assert cookies["refresh_token_cookie"]["httponly"] is True
    assert cookies["refresh_token_cookie"]["path"] == "/auth"
    assert "csrf_refresh_token" in cookies
    user = stored_user(in_db, "victor@example.com")
    assert user.username == "victor"
    assert user.full_name == "Victor Example"
    assert user.avatar_url == "https://pics.example/victor.png"
    assert user.password_hash is None
    assert user.email_verified is not None
    assert identities_of(in_db, "victor@example.com") == [("google", "google-sub-1")]
    profile = me(client, response.json["access_token"])
    assert profile.status_code == 200
    assert profile.json["has_password"] is False
    assert profile.json["avatar_url"] == "https://pics.example/victor.png"


def test_the_token_request_proves_pkce_and_the_client(client, google):
    location = begin(client, "google")
    challenge = query_of(location)["code_challenge"]
    assert sign_in_from(client, location).status_code == 200

    (token_request,) = google.token_requests
    assert s256(token_request["code_verifier"]) == challenge
    assert token_request["redirect_uri"] == "http://localhost/auth/google/callback"
    assert token_request["grant_type"] == "authorization_code"


def sign_in_from(client, location):
    return client.get(path_of(at_provider(location)))


def test_returning_user_is_found_by_subject_even_after_an_email_change(client, google, in_db):
    first = sign_in(client, "google")
    google.user["email"] = "victor@new-domain.example"

    second = sign_in(client, "google")

    assert second.status_code == 200
    assert claims(second.json["access_token"])["sub"] == claims(first.json["access_token"])["sub"]
    assert row_count(in_db, User) == 1
    assert stored_user(in_db, "victor@example.com") is not None  # the account keeps its email
    identity = in_db(lambda: db.session.get(OAuthAccount, ("google", "google-sub-1")))
    assert identity.email == "victor@new-domain.example"


def test_the_same_email_under_another_subject_is_not_the_same_identity(client, google, in_db):
    """A Google account that later holds the address does not inherit the identity."""
    sign_in(client, "google")
    google.user["sub"] = "google-sub-2"

    response = sign_in(client, "google")

    # The account's email is verified (it was created by Google), so this links as a
    # second Google identity -- which one account cannot have: refused.
    assert_error(response, 409, "provider_already_linked")
    assert identities_of(in_db, "victor@example.com") == [("google", "google-sub-1")]


def test_username_is_derived_and_made_unique(client, auth, google, in_db):
    assert auth.signup(email="someone@example.com", username="victor").status_code == 201

    assert sign_in(client, "google").status_code == 200

    assert stored_user(in_db, "victor@example.com").username == "victor2"


def test_username_from_a_name_without_usable_characters(client, google, in_db):
    google.user.update(email="\u00e9@example.com", name="\u5f20\u4f1f")

    assert sign_in(client, "google").status_code == 200

    user = stored_user(in_db, "\u00e9@example.com")
    assert user.username == "user"
    assert user.full_name == "\u5f20\u4f1f"


def test_name_and_picture_come_from_userinfo_when_the_id_token_lacks_them(client, google, in_db):
    google.misbehave["id_token_without_profile"] = True

    assert sign_in(client, "google").status_code == 200

    user = stored_user(in_db, "victor@example.com")
    assert (user.full_name, user.avatar_url) == (
        "Victor Example",
        "https://pics.example/victor.png",
    )


def test_unverified_google_email_is_refused(client, google, in_db):
    google.user["email_verified"] = False

    response = sign_in(client, "google")

    assert_error(response, 403, "email_not_verified")
    assert_nothing_created(in_db)


def test_a_returning_user_signs_in_even_if_google_no_longer_vouches_for_the_email(client, google):
    sign_in(client, "google")
    google.user["email_verified"] = False

    assert sign_in(client, "google").status_code == 200


def test_deactivated_account_cannot_sign_in(client, google, in_db):
    sign_in(client, "google")

    def deactivate():
        db.session.execute(sa.update(User).values(is_active=False))
        db.session.commit()

    in_db(deactivate)
    before = row_count(in_db, RefreshToken)

    assert_error(sign_in(client, "google"), 403, "account_inactive")
    assert row_count(in_db, RefreshToken) == before


# --- linking to an existing local account ---------------------------------------------


def test_links_to_a_local_account_whose_email_is_verified_and_removes_its_password(
    client, auth, google, in_db
):
    auth.signup(email="victor@example.com", username="vic")
    mark_email_verified(in_db, "victor@example.com")

    response = sign_in(client, "google")

    assert response.status_code == 200
    assert row_count(in_db, User) == 1
    assert identities_of(in_db, "victor@example.com") == [("google", "google-sub-1")]
    user = stored_user(in_db, "victor@example.com")
    assert user.username == "vic"  # the local profile is kept
    # Not the password: whoever set it may not own the mailbox (docs/adr/0401).
    assert user.password_hash is None
    assert auth.login("victor@example.com").status_code == 401


def test_links_to_a_local_account_under_another_spelling_of_its_email(client, auth, google, in_db):
    auth.signup(email="victor@exämple.com", username="vic")
    mark_email_verified(in_db, "victor@xn--exmple-cua.com")
    google.user["email"] = "Victor@EXÄMPLE.com"

    assert sign_in(client, "google").status_code == 200

    assert row_count(in_db, User) == 1
    assert identities_of(in_db, "victor@xn--exmple-cua.com") == [("google", "google-sub-1")]


def test_a_google_email_with_an_invisible_character_is_no_email(client, google, in_db):
    google.user["email"] = "victor@exa\u200bmple.com"

    assert_error(sign_in(client, "google"), 403, "email_not_verified")
    assert row_count(in_db, User) == 0


def test_pre_registration_takeover_is_refused(client, oauth_app, auth, google, in_db):
    """An attacker signs up with the victim's address (never verified) and keeps a session
    open; the victim's Google login must not land in, or link to, that account."""
    attacker = auth.signup_and_login(email="victor@example.com", username="mallory")

    response = sign_in(oauth_app.test_client(), "google")  # the victim, in another browser

    assert_error(response, 409, "account_exists_unverified")
    assert "log in with your password first" in response.json["message"].lower()
    assert row_count(in_db, OAuthAccount) == 0
    assert row_count(in_db, User) == 1
    # No session was started for anyone; the attacker holds only what they had.
    assert row_count(in_db, RefreshToken) == 1
    assert me(client, attacker["access_token"]).json["email_verified"] is False


def test_after_verifying_the_email_the_next_google_login_links(client, auth, google, in_db):
    auth.signup(email="victor@example.com", username="vic")
    assert sign_in(client, "google").status_code == 409
    mark_email_verified(in_db, "victor@example.com")  # the owner logs in and verifies

    assert sign_in(client, "google").status_code == 200
    assert identities_of(in_db, "victor@example.com") == [("google", "google-sub-1")]


def test_unverified_google_email_never_links(client, auth, google, in_db):
    auth.signup(email="victor@example.com", username="vic")
    mark_email_verified(in_db, "victor@example.com")
    google.user["email_verified"] = False

    assert_error(sign_in(client, "google"), 403, "email_not_verified")
    assert row_count(in_db, OAuthAccount) == 0


def test_email_verified_as_a_string_is_understood(client, google, in_db):
    google.user["email_verified"] = "true"
    assert sign_in(client, "google").status_code == 200
    google.user.update(sub="google-sub-3", email="other@example.com", email_verified="false")
    assert_error(sign_in(client, "google"), 403, "email_not_verified")


def test_refresh_token_from_a_google_login_rotates(client, google, in_db):
    pair = sign_in(client, "google").json
    response = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 200
    assert response.json["refresh_token"] != pair["refresh_token"]
    assert me(client, response.json["access_token"]).status_code == 200
    assert client.get("/users/me", headers=bearer(pair["access_token"])).status_code == 200


def test_the_state_cookie_survives_the_providers_cross_site_redirect(client):
    """The state waits in the session cookie; SameSite=Strict would drop it on the way back."""
    cookie = set_cookies(client.get("/auth/google/login"))["__Host-session"]
    assert cookie["samesite"] == "Lax"
    assert cookie["httponly"] is True
    assert cookie["secure"] is True  # follows JWT_COOKIE_SECURE
    assert cookie["path"] == "/"


def oauth_app_as(make_app, google, github, config_class):
    """An app of ``config_class`` (environment ignored) on the test database, providers on."""
    return make_app(
        type(
            f"OAuth{config_class.__name__}",
            (config_class,),
            {
                **PRODUCTION_SECRETS,
                **app_settings(google, github),
                "DATABASE_URL": TestingConfig.DATABASE_URL,
                "READ_ENVIRONMENT": False,
            },
        )
    )


def test_production_names_the_state_cookie_host_only(make_app, google, github):
    """__Host-: Secure, Path=/, no Domain, so no sibling subdomain can plant the state."""
    app = oauth_app_as(make_app, google, github, ProductionConfig)

    cookies = set_cookies(app.test_client().get("/auth/google/login"))

    assert "session" not in cookies
    cookie = cookies["__Host-session"]
    assert cookie["secure"] is True
    assert cookie["path"] == "/"
    assert "domain" not in cookie
    assert cookie["samesite"] == "Lax"


def test_development_over_http_keeps_a_plain_state_cookie(make_app, google, github):
    """Browsers refuse a __Host- cookie without Secure, which plain http cannot have."""
    app = oauth_app_as(make_app, google, github, DevelopmentConfig)

    cookies = set_cookies(app.test_client().get("/auth/google/login"))

    assert "__Host-session" not in cookies
    assert "secure" not in cookies["session"]
    assert cookies["session"]["path"] == "/"
