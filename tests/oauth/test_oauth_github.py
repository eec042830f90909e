"""Sign in with GitHub against a GitHub-protocol server on 127.0.0.1: the email used is
the one /user/emails lists as primary *and* verified, never /user.email."""

from __future__ import annotations

import pytest

from auth_service.extensions import db
from auth_service.persistence.models import OAuthAccount, User
from dance import (
    assert_error,
    assert_nothing_created,
    begin,
    identities_of,
    query_of,
    sign_in,
)
from fake_provider import CLIENT_ID, email, s256
from helpers import claims, mark_email_verified, row_count, stored_user


def test_login_redirects_with_state_and_pkce(client, github):
    location = begin(client, "github")

    assert location.startswith(f"{github.base_url}/login/oauth/authorize?")
    query = query_of(location)
    assert query["client_id"] == CLIENT_ID
    assert query["scope"].split() == ["read:user", "user:email"]
    assert query["redirect_uri"] == "http://localhost/auth/github/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32


def test_first_login_creates_a_user_from_the_profile(client, github, in_db):
    response = sign_in(client, "github")

    assert response.status_code == 200, response.json
    user = stored_user(in_db, "octo@example.com")
    assert (user.username, user.full_name) == ("octo-cat", "The Octocat")
    assert user.avatar_url == "https://avatars.githubusercontent.com/u/583231?v=4"
    assert user.password_hash is None and user.email_verified is not None
    assert identities_of(in_db, "octo@example.com") == [("github", "583231")]
    (token_request,) = github.token_requests
    assert token_request["client_secret"] == "test-client-secret"  # client_secret_post
    assert s256(token_request["code_verifier"]) == github.authorize_requests[0]["code_challenge"]


def test_returning_user_is_found_by_id_after_changing_the_primary_email(client, github, in_db):
    first = sign_in(client, "github")
    github.emails = [email("octo@new.example", primary=True, verified=True)]
    github.user["login"] = "renamed-cat"

    second = sign_in(client, "github")

    assert claims(second.json["access_token"])["sub"] == claims(first.json["access_token"])["sub"]
    assert row_count(in_db, User) == 1
    assert (
        in_db(lambda: db.session.get(OAuthAccount, ("github", "583231")).email)
        == "octo@new.example"
    )


def test_public_profile_email_is_ignored(client, auth, github, in_db):
    """/user.email is whatever the user typed in their profile, unverified: it must never
    pick (or link to) an account."""
    auth.signup(email="victim@example.com", username="victim")
    mark_email_verified(in_db, "victim@example.com")
    github.user["email"] = "victim@example.com"

    assert sign_in(client, "github").status_code == 200

    assert identities_of(in_db, "victim@example.com") == []
    assert identities_of(in_db, "octo@example.com") == [("github", "583231")]


@pytest.mark.parametrize(
    "emails",
    [
        pytest.param(
            [
                email("octo@example.com", primary=True, verified=False),
                email("other@example.com", verified=True),
            ],
            id="unverified primary, verified secondary",
        ),
        pytest.param(
            [email("octo@example.com", primary=True, verified=False)], id="unverified primary"
        ),
        pytest.param([email("octo@example.com", verified=True)], id="verified but not primary"),
        pytest.param([], id="no emails"),
        pytest.param(None, id="user:email not granted (404)"),
    ],
)
def test_github_without_a_verified_primary_email_is_refused(client, github, in_db, emails):
    github.emails = emails
    github.user["email"] = "octo@example.com"

    response = sign_in(client, "github")

    assert_error(response, 403, "email_not_verified")
    assert_nothing_created(in_db)


def test_unverified_primary_does_not_link_to_the_verified_secondarys_account(
    client, auth, github, in_db
):
    auth.signup(email="other@example.com", username="other")
    mark_email_verified(in_db, "other@example.com")
    github.emails = [
        email("octo@example.com", primary=True, verified=False),
        email("other@example.com", verified=True),
    ]

    assert_error(sign_in(client, "github"), 403, "email_not_verified")
    assert row_count(in_db, OAuthAccount) == 0


def test_github_links_to_a_google_created_account_with_the_same_verified_email(
    client, google, github, in_db
):
    google.user["email"] = "octo@example.com"
    sign_in(client, "google")

    assert sign_in(client, "github").status_code == 200

    assert row_count(in_db, User) == 1
    assert identities_of(in_db, "octo@example.com") == [
        ("github", "583231"),
        ("google", "google-sub-1"),
    ]


def test_github_pre_registration_takeover_is_refused(client, auth, github, in_db):
    auth.signup_and_login(email="octo@example.com", username="mallory")

    assert_error(sign_in(client, "github"), 409, "account_exists_unverified")
    assert row_count(in_db, OAuthAccount) == 0
