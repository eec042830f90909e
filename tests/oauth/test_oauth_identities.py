"""Linked identities (list, unlink, the last-way-in rule), /auth/providers and
disabled providers."""

from __future__ import annotations

import pytest

from auth_service.persistence.models import OAuthAccount, User
from dance import assert_error, identities_of, link_from_session, sign_in
from helpers import PASSWORD, bearer, mark_email_verified, row_count


def google_user(client) -> dict:
    """Sign in with Google (a new password-less account); its Authorization header."""
    response = sign_in(client, "google")
    assert response.status_code == 200
    return bearer(response.json["access_token"])


def test_identities_are_listed(client, google, github):
    google.user["email"] = "octo@example.com"
    headers = google_user(client)
    sign_in(client, "github")

    response = client.get("/users/me/identities", headers=headers)

    assert response.status_code == 200
    assert [i["provider"] for i in response.json] == ["github", "google"]
    assert set(response.json[0]) == {"provider", "email", "created_at", "last_login_at"}
    assert response.json[0]["email"] == "octo@example.com"
    assert "subject" not in response.json[0]


def test_identities_need_an_access_token(client):
    assert_error(client.get("/users/me/identities"), 401, "authorization_required")
    assert_error(client.delete("/users/me/identities/google"), 401, "authorization_required")


def test_unlinking_the_only_way_to_sign_in_is_refused(client, in_db):
    headers = google_user(client)

    response = client.delete("/users/me/identities/google", headers=headers)

    assert_error(response, 409, "last_sign_in_method")
    assert row_count(in_db, OAuthAccount) == 1


def test_unlinking_one_of_two_identities_then_refusing_the_last(client, google, github, in_db):
    google.user["email"] = "octo@example.com"
    headers = google_user(client)
    sign_in(client, "github")

    assert client.delete("/users/me/identities/google", headers=headers).status_code == 204
    assert identities_of(in_db, "octo@example.com") == [("github", "583231")]
    assert_error(
        client.delete("/users/me/identities/github", headers=headers), 409, "last_sign_in_method"
    )


def test_a_password_account_can_unlink_its_only_identity(client, auth, in_db):
    auth.signup(email="victor@example.com", username="vic")
    mark_email_verified(in_db, "victor@example.com")
    headers = bearer(auth.login("victor@example.com").json["access_token"])
    assert link_from_session(client, "google", headers).status_code == 200

    assert client.delete("/users/me/identities/google", headers=headers).status_code == 204
    assert row_count(in_db, OAuthAccount) == 0
    assert auth.login("victor@example.com", PASSWORD).status_code == 200


def test_after_unlinking_the_provider_login_links_again(client, auth, in_db):
    auth.signup(email="victor@example.com", username="vic")
    mark_email_verified(in_db, "victor@example.com")
    headers = bearer(auth.login("victor@example.com").json["access_token"])
    link_from_session(client, "google", headers)
    client.delete("/users/me/identities/google", headers=headers)

    assert sign_in(client, "google").status_code == 200
    assert row_count(in_db, User) == 1


def test_unlinking_a_provider_that_is_not_linked(client, auth):
    tokens = auth.signup_and_login()
    response = client.delete("/users/me/identities/github", headers=bearer(tokens["access_token"]))
    assert_error(response, 404, "identity_not_found")


def test_unknown_provider_is_404(client, auth):
    tokens = auth.signup_and_login()
    response = client.delete(
        "/users/me/identities/facebook", headers=bearer(tokens["access_token"])
    )
    assert_error(response, 404, "not_found")


def test_deleting_a_provider_account_needs_no_password_and_removes_its_identities(client, in_db):
    headers = google_user(client)

    assert client.delete("/users/me", headers=headers).status_code == 204

    assert row_count(in_db, User) == 0
    assert row_count(in_db, OAuthAccount) == 0


# --- enabled and disabled providers ---------------------------------------------------


def test_providers_lists_the_enabled_ones(client):
    response = client.get("/auth/providers")
    assert response.status_code == 200
    assert response.json == {
        "providers": [
            {"name": "google", "login_url": "/auth/google/login"},
            {"name": "github", "login_url": "/auth/github/login"},
        ]
    }


def test_a_provider_needs_both_id_and_secret(make_oauth_app):
    only_google = make_oauth_app(GITHUB_CLIENT_SECRET=None).test_client()
    assert only_google.get("/auth/providers").json == {
        "providers": [{"name": "google", "login_url": "/auth/google/login"}]
    }
    assert_error(only_google.get("/auth/github/login"), 404, "provider_disabled")


@pytest.mark.parametrize(
    "path",
    [
        "/auth/google/login",
        "/auth/google/callback?code=x&state=y",
        "/auth/github/login",
        "/auth/github/callback",
    ],
)
def test_disabled_providers_answer_404(app, path, in_db):
    """The suite's plain app configures no provider."""
    browser = app.test_client()

    response = browser.get(path)

    assert_error(response, 404, "provider_disabled")
    assert "not enabled" in response.json["message"]
    assert browser.get("/auth/providers").json == {"providers": []}
    assert row_count(in_db, User) == 0


def test_unknown_provider_login_is_404(client):
    assert_error(client.get("/auth/facebook/login"), 404, "not_found")
