"""Every way a provider login can go wrong ends in the shared JSON error shape
(400/401/403/502), with no account, identity or session created, and never a 500."""

from __future__ import annotations

import pytest

from auth_service.persistence.models import RefreshToken
from dance import (
    assert_error,
    assert_nothing_created,
    at_provider,
    begin,
    callback_for,
    path_of,
    query_of,
    sign_in,
)
from helpers import row_count

# --- state: the callback must belong to a login this browser started ------------------


def test_provider_error_access_denied(client, google, in_db):
    google.misbehave["error"] = "access_denied"

    response = sign_in(client, "google")

    assert_error(response, 401, "provider_denied")
    assert "access_denied" in response.json["message"]
    assert_nothing_created(in_db)


def test_provider_error_code_is_not_echoed_verbatim(client, in_db):
    begin(client, "google")
    response = client.get(
        "/auth/google/callback", query_string={"error": "<script>alert(1)</script>", "state": "x"}
    )
    assert_error(response, 401, "provider_denied")
    assert "<" not in response.json["message"]


def test_missing_state(client, in_db):
    callback = callback_for(client, "google")
    query = query_of(callback)

    response = client.get("/auth/google/callback", query_string={"code": query["code"]})

    assert_error(response, 400, "invalid_state")
    assert_nothing_created(in_db)


def test_tampered_state(client, in_db):
    query = query_of(callback_for(client, "google"))

    response = client.get(
        "/auth/google/callback", query_string={"code": query["code"], "state": query["state"] + "x"}
    )

    assert_error(response, 400, "invalid_state")
    assert_nothing_created(in_db)


def test_callback_in_a_browser_that_did_not_start_the_login(client, oauth_app, in_db):
    """Login CSRF: the attacker's own code + state, opened in the victim's browser."""
    attackers_callback = callback_for(oauth_app.test_client(), "google")

    response = client.get(attackers_callback)

    assert_error(response, 400, "invalid_state")
    assert_nothing_created(in_db)


def test_missing_code(client, in_db):
    query = query_of(callback_for(client, "google"))

    response = client.get("/auth/google/callback", query_string={"state": query["state"]})

    assert_error(response, 400, "missing_code")
    assert_nothing_created(in_db)


@pytest.mark.parametrize("provider", ["google", "github"])
def test_replayed_callback_is_refused(client, in_db, provider):
    callback = callback_for(client, provider)
    assert client.get(callback).status_code == 200

    response = client.get(callback)

    assert_error(response, 400, "invalid_state")
    assert row_count(in_db, RefreshToken) == 1


@pytest.mark.parametrize("provider", ["google", "github"])
def test_replay_with_a_copied_session_cookie_is_refused_by_the_provider(client, in_db, provider):
    """The state lives in the session cookie: a copy of the old cookie brings it back,
    but the provider's codes are single-use."""
    callback = callback_for(client, provider)
    old_session = client.get_cookie("__Host-session").value
    assert client.get(callback).status_code == 200
    client.set_cookie("__Host-session", old_session)

    response = client.get(callback)

    assert_error(response, 401, "provider_rejected")
    assert row_count(in_db, RefreshToken) == 1


def test_callback_iss_parameter_of_another_issuer(client, google, in_db):
    google.misbehave["callback_extra"] = {"iss": "https://evil.example"}

    assert_error(sign_in(client, "google"), 400, "issuer_mismatch")
    assert_nothing_created(in_db)


def test_callback_iss_parameter_of_the_right_issuer_is_fine(client, google):
    google.misbehave["callback_extra"] = {"iss": google.issuer}
    assert sign_in(client, "google").status_code == 200


# --- the ID token ---------------------------------------------------------------------

ID_TOKEN_ATTACKS = {
    "wrong nonce": {"claims": {"nonce": "not-the-nonce-we-sent"}},
    "no nonce": {"claims": {"nonce": None}},
    "wrong audience": {
        "claims": {"aud": "someone-elses-client-id", "azp": "someone-elses-client-id"}
    },
    "audience list without us": {"claims": {"aud": ["a", "b"], "azp": "a"}},
    "wrong issuer": {"claims": {"iss": "https://evil.example"}},
    "expired": {"claims": {"exp": 1_000_000_000, "iat": 999_999_000}},
    "foreign signature": {"foreign_signature": True},
}


@pytest.mark.parametrize("misbehaviour", ID_TOKEN_ATTACKS.values(), ids=ID_TOKEN_ATTACKS.keys())
def test_invalid_id_token_is_refused(client, google, in_db, misbehaviour):
    google.misbehave.update(misbehaviour)

    response = sign_in(client, "google")

    assert_error(response, 401, "invalid_id_token")
    assert_nothing_created(in_db)


def test_answer_without_an_id_token_is_refused(client, google, in_db):
    google.misbehave["no_id_token"] = True

    assert_error(sign_in(client, "google"), 401, "invalid_id_token")
    assert_nothing_created(in_db)


def test_discovery_document_with_another_issuer(make_oauth_app, google, in_db):
    """The issuer is pinned to the configured discovery URL, not to what the document says."""
    google.misbehave["discovery_issuer"] = "https://accounts.google.com"
    fresh = make_oauth_app().test_client()  # the session's app has the document cached

    response = fresh.get(path_of(at_provider(begin(fresh, "google"))))

    assert_error(response, 502, "provider_error")
    assert_nothing_created(in_db)


def test_discovery_document_without_jwks_uri(make_oauth_app, google, in_db):
    google.misbehave["discovery_without"] = ["jwks_uri"]
    fresh = make_oauth_app().test_client()

    assert_error(fresh.get(path_of(at_provider(begin(fresh, "google")))), 502, "provider_error")
    assert_nothing_created(in_db)


def test_discovery_document_that_is_not_json(make_oauth_app, google):
    google.misbehave["discovery_garbage"] = True

    response = make_oauth_app().test_client().get("/auth/google/login")

    assert_error(response, 502, "provider_error")


def test_too_long_subject(client, google, in_db):
    google.user["sub"] = "x" * 256

    assert_error(sign_in(client, "google"), 502, "provider_error")
    assert_nothing_created(in_db)


# --- unreachable or slow providers ----------------------------------------------------


def test_unreachable_discovery_at_login(make_oauth_app, closed_port, in_db):
    app_ = make_oauth_app(
        GOOGLE_DISCOVERY_URL=f"http://127.0.0.1:{closed_port}/.well-known/openid-configuration"
    )

    response = app_.test_client().get("/auth/google/login")

    assert_error(response, 502, "provider_unreachable")


@pytest.mark.parametrize(
    "provider, stage", [("google", "token"), ("github", "token"), ("github", "user")]
)
def test_slow_provider_times_out(make_oauth_app, google, github, in_db, provider, stage):
    app_ = make_oauth_app(OAUTH_HTTP_TIMEOUT=1.0)
    browser = app_.test_client()
    callback = callback_for(browser, provider)
    (google if provider == "google" else github).misbehave["slow"] = stage

    response = browser.get(callback)

    assert_error(response, 502, "provider_unreachable")
    assert_nothing_created(in_db)


def test_unreachable_github_api(make_oauth_app, closed_port, in_db):
    app_ = make_oauth_app(GITHUB_API_URL=f"http://127.0.0.1:{closed_port}/")
    browser = app_.test_client()

    assert_error(sign_in(browser, "github"), 502, "provider_unreachable")
    assert_nothing_created(in_db)


def test_garbage_from_the_github_api(client, github, in_db):
    github.user = {"login": "x"}  # no numeric id

    assert_error(sign_in(client, "github"), 502, "provider_error")
    assert_nothing_created(in_db)


def test_login_and_callback_are_rate_limited_per_ip(make_oauth_app, in_db):
    browser = make_oauth_app(RATELIMIT_OAUTH="2 per minute").test_client()
    assert browser.get("/auth/google/login").status_code == 302
    assert browser.get("/auth/github/login").status_code == 302
    assert_error(browser.get("/auth/google/login"), 429, "rate_limited")
    for _ in range(2):
        assert browser.get("/auth/google/callback?code=x&state=y").status_code == 400

    response = browser.get("/auth/google/callback?code=x&state=y")

    assert_error(response, 429, "rate_limited")
    assert response.headers["Retry-After"]


def test_provider_logins_go_on_uncounted_with_the_limits_storage_down(make_oauth_app, in_db):
    # state, nonce and PKCE cannot be guessed; the password endpoints still refuse.
    browser = make_oauth_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()

    response = sign_in(browser, "google")

    assert response.status_code == 200, response.json
    assert response.json["access_token"]
    assert row_count(in_db, RefreshToken) == 1
    assert_error(
        browser.post("/auth/login", json={"email": "a@example.com", "password": "x"}),
        503,
        "rate_limit_unavailable",
    )
