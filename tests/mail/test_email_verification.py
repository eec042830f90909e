"""Email verification: the email after signup and on resend, its link, the CLI."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from freezegun import freeze_time

from auth_service.extensions import db
from auth_service.integrations import mail
from config import TestingConfig
from helpers import PASSWORD, bearer, me, stored_user
from mail_helpers import html_part, link_in, path_and_query, text_part, token_of, use_smtp

SUBJECT = "Verify your email address"
FRONTEND = "https://app.example.test"


@pytest.fixture
def verification(smtp, auth):
    """Alice has signed up; the link of her verification email."""
    assert auth.signup().status_code == 201
    return link_in(smtp.last("alice@example.com", SUBJECT))


@pytest.fixture
def frontend(app, monkeypatch):
    monkeypatch.setitem(app.config, "FRONTEND_URL", FRONTEND)


def verify(client, token):
    return client.post("/auth/verify-email", json={"token": token})


def sha256_source(text: str) -> str:
    """A CSP hash source for an inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# --- the email --------------------------------------------------------------------------


def test_signup_sends_a_verification_email(smtp, auth):
    assert auth.signup().status_code == 201
    [message] = smtp.to("alice@example.com")
    assert message["Subject"] == SUBJECT
    assert message["From"] == "auth_service <no-reply@auth.example.test>"
    assert smtp.envelopes[0].rcpt_tos == ["alice@example.com"]
    link = link_in(message)
    assert link.startswith("https://auth.example.test/auth/verify-email?token=")
    assert "48 hours" in text_part(message)
    # The HTML part carries the same link (HTML-escaped in the attribute).
    assert f'href="{link}"' in html_part(message).replace("&amp;", "&")


def test_a_new_account_is_unverified(smtp, auth, in_db):
    profile = auth.signup().json
    assert profile["email_verified"] is False
    assert profile["email_verified_at"] is None
    assert stored_user(in_db).email_verified is None


def test_the_token_names_no_email_address(verification):
    token = token_of(verification)
    assert "alice" not in token
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert "example.com" not in decoded


# --- following the link ---------------------------------------------------------------


def test_following_the_link_shows_a_page_and_changes_nothing(client, verification, in_db):
    response = client.get(path_and_query(verification))
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<form id="verify">' in page
    assert '<button type="submit">Verify my email address</button>' in page
    assert stored_user(in_db).email_verified is None


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_mail_scanner_opening_the_link_verifies_nothing(client, verification, in_db, method):
    for _ in range(5):
        assert getattr(client, method)(path_and_query(verification)).status_code == 200
    assert stored_user(in_db).email_verified is None
    # The token is still good for the person who presses the button.
    assert verify(client, token_of(verification)).json["status"] == "verified"


def test_the_page_loads_nothing_and_posts_only_to_this_origin(client, verification):
    response = client.get(path_and_query(verification))
    csp = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert csp["connect-src"] == "'self'"
    assert csp["form-action"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    page = response.get_data(as_text=True)
    # Inline script and styles only, each allowed by its hash: nothing else can run.
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert csp["script-src"] == sha256_source(script)
    assert csp["style-src"] == sha256_source(style)
    assert "src=" not in page and "href=" not in page
    assert "fetch(location.pathname" in script
    # The token is read from the address bar; the page itself holds no copy of it.
    assert token_of(verification) not in page
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_pressing_the_button_verifies_the_email(client, verification, in_db):
    """What the page's script sends: the token as JSON to the path the link opened."""
    before = datetime.now(UTC)
    client.get(path_and_query(verification))
    response = client.post(urlsplit(verification).path, json={"token": token_of(verification)})
    assert response.status_code == 200
    assert response.json == {"status": "verified", "message": "Your email address is verified."}
    assert stored_user(in_db).email_verified >= before - timedelta(seconds=1)


def test_the_profile_shows_that_and_when_the_email_was_verified(client, auth, verification, in_db):
    verify(client, token_of(verification))
    access = auth.login().json["access_token"]
    profile = me(client, access).json
    assert profile["email_verified"] is True
    verified_at = datetime.fromisoformat(profile["email_verified_at"])
    assert verified_at == stored_user(in_db).email_verified


def test_post_verifies_for_api_clients(client, verification, in_db):
    response = verify(client, token_of(verification))
    assert response.status_code == 200
    assert response.json["status"] == "verified"
    assert stored_user(in_db).email_verified is not None


@pytest.mark.parametrize("again", ["get", "post"])
def test_a_used_link_only_reports_already_verified(client, verification, in_db, again):
    assert verify(client, token_of(verification)).status_code == 200
    first = stored_user(in_db).email_verified
    if again == "get":
        response = client.get(path_and_query(verification))
    else:
        response = verify(client, token_of(verification))
    assert response.status_code == 200
    assert response.json["status"] == "already_verified"
    assert stored_user(in_db).email_verified == first


def test_tracking_parameters_on_the_link_are_ignored(client, verification):
    assert client.get(path_and_query(verification) + "&utm_source=mail").status_code == 200


# --- redirect to the frontend ---------------------------------------------------------


def test_with_a_frontend_the_link_redirects_with_the_token_in_the_fragment(
    client, frontend, verification, in_db
):
    response = client.get(path_and_query(verification))
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{FRONTEND}/verify-email"
    # In the fragment, never in the query: browsers do not send it to the frontend's server.
    assert location.query == ""
    assert location.fragment == f"token={token_of(verification)}"
    assert response.headers["Cache-Control"] == "no-store"
    assert stored_user(in_db).email_verified is None
    # The frontend POSTs it; the link then only reports the status.
    assert verify(client, token_of(verification)).json["status"] == "verified"
    again = client.get(path_and_query(verification))
    assert again.headers["Location"] == f"{FRONTEND}/verify-email?status=already_verified"


@pytest.mark.parametrize("token, status", [("garbage", "invalid"), ("a.b.c", "invalid")])
def test_with_a_frontend_a_bad_link_redirects_with_invalid(client, frontend, token, status):
    response = client.get(f"/auth/verify-email?token={token}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{FRONTEND}/verify-email?status={status}"


def test_with_a_frontend_an_expired_link_redirects_with_expired(client, frontend, verification):
    with freeze_time(datetime.now(UTC) + timedelta(hours=49)):
        response = client.get(path_and_query(verification))
    assert response.headers["Location"] == f"{FRONTEND}/verify-email?status=expired"


def test_a_frontend_url_with_a_path_and_query_keeps_them(app, client, monkeypatch, verification):
    monkeypatch.setitem(app.config, "FRONTEND_URL", "https://example.test/app/?lang=en")
    location = client.get(path_and_query(verification)).headers["Location"]
    assert location == (
        f"https://example.test/app/verify-email?lang=en#token={token_of(verification)}"
    )
    verify(client, token_of(verification))
    location = client.get(path_and_query(verification)).headers["Location"]
    assert location == "https://example.test/app/verify-email?lang=en&status=already_verified"


# --- refused links --------------------------------------------------------------------


def test_an_expired_link_is_refused(client, verification, in_db):
    with freeze_time(datetime.now(UTC) + timedelta(hours=48, seconds=2)):
        response = client.get(path_and_query(verification))
    assert response.status_code == 400
    assert response.json["error"] == "token_expired"
    assert stored_user(in_db).email_verified is None


def test_a_link_works_until_it_expires(client, verification):
    with freeze_time(datetime.now(UTC) + timedelta(hours=47, minutes=59)):
        assert client.get(path_and_query(verification)).status_code == 200


def test_the_lifetime_is_configurable(app, client, monkeypatch, verification):
    monkeypatch.setitem(app.config, "EMAIL_VERIFY_TOKEN_MAX_AGE", timedelta(hours=1))
    with freeze_time(datetime.now(UTC) + timedelta(hours=1, seconds=2)):
        assert client.get(path_and_query(verification)).json["error"] == "token_expired"


def _other_signature(token: str) -> str:
    # The signature's first character: every bit of it counts (the last one has padding bits).
    payload, stamp, signature = token.split(".")
    return f"{payload}.{stamp}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


@pytest.mark.parametrize(
    "mangle",
    [
        _other_signature,
        lambda t: t[:-5],  # truncated
        lambda t: "x" + t,  # payload changed
        lambda t: t.split(".", 1)[1],  # payload dropped
    ],
)
def test_a_tampered_token_is_refused(client, verification, in_db, mangle):
    response = verify(client, mangle(token_of(verification)))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_token"
    assert stored_user(in_db).email_verified is None


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": "x" * 1025}, {"token": 5}])
def test_a_malformed_request_is_a_422(client, body):
    assert client.post("/auth/verify-email", json=body).status_code == 422


def test_a_missing_query_token_is_a_422(client):
    assert client.get("/auth/verify-email").status_code == 422


def test_the_link_dies_when_the_email_changes(client, verification, in_db):
    def change_email():
        user = stored_user(in_db)
        db.session.merge(user).email = "alice@elsewhere.example"
        db.session.commit()

    in_db(change_email)
    response = client.get(path_and_query(verification))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_token"


def test_a_deactivated_account_cannot_verify(client, runner, verification, in_db):
    runner.invoke(args=["users", "deactivate", "alice@example.com"])
    assert client.get(path_and_query(verification)).status_code == 400
    assert stored_user(in_db).email_verified is None


def test_a_deleted_accounts_link_is_refused(client, auth, verification):
    access = auth.login().json["access_token"]
    client.delete("/users/me", headers=bearer(access), json={"password": PASSWORD})
    assert client.get(path_and_query(verification)).json["error"] == "invalid_token"


def test_an_access_or_refresh_token_is_not_a_verification_token(client, smtp, auth, in_db):
    tokens = auth.signup_and_login()
    for jwt in (tokens["access_token"], tokens["refresh_token"]):
        response = verify(client, jwt)
        assert (response.status_code, response.json["error"]) == (400, "invalid_token")
    assert stored_user(in_db).email_verified is None


def test_a_verification_token_is_not_an_access_token(client, verification):
    response = client.get("/auth/me", headers=bearer(token_of(verification)))
    assert response.status_code == 401


def test_tokens_are_signed_with_the_app_secret(app, client, monkeypatch, verification):
    monkeypatch.setitem(app.config, "SECRET_KEY", "another-secret-key-" + "z" * 32)
    assert verify(client, token_of(verification)).json["error"] == "invalid_token"


# --- resend ---------------------------------------------------------------------------


def test_resend_sends_a_new_working_link(client, smtp, alice_headers, in_db):
    response = client.post("/auth/verify-email/resend", headers=alice_headers)
    assert response.status_code == 202
    assert "alice@example.com" in response.json["message"]
    messages = smtp.to("alice@example.com", SUBJECT)
    assert len(messages) == 2
    assert verify(client, token_of(link_in(messages[-1]))).status_code == 200
    assert stored_user(in_db).email_verified is not None


def test_resend_when_already_verified_is_a_409(client, smtp, alice_headers, runner):
    runner.invoke(args=["users", "verify-email", "alice@example.com"])
    response = client.post("/auth/verify-email/resend", headers=alice_headers)
    assert response.status_code == 409
    assert response.json["error"] == "email_already_verified"
    assert len(smtp.to("alice@example.com", SUBJECT)) == 1  # the signup's only


def test_resend_needs_an_access_token(client, smtp):
    assert client.post("/auth/verify-email/resend").status_code == 401
    assert smtp.wait() == []


def test_resend_refuses_a_refresh_token(client, smtp, alice_tokens):
    response = client.post(
        "/auth/verify-email/resend", headers=bearer(alice_tokens["refresh_token"])
    )
    assert response.status_code == 401


# --- links are built from PUBLIC_BASE_URL, not from the request -----------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
        {
            "Host": "evil.example",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "host=evil.example",
        },
    ],
)
def test_the_host_header_does_not_change_the_link(client, smtp, headers):
    body = {"email": "alice@example.com", "username": "alice", "password": PASSWORD}
    assert client.post("/auth/signup", json=body, headers=headers).status_code == 201
    link = link_in(smtp.last("alice@example.com", SUBJECT))
    assert urlsplit(link).netloc == "auth.example.test"
    assert "evil" not in html_part(smtp.last("alice@example.com", SUBJECT))


def test_behind_a_trusted_proxy_the_forwarded_host_does_not_change_the_link(
    second_app, smtp, monkeypatch
):
    class BehindProxy(TestingConfig):
        TRUSTED_PROXIES = 1

    proxied = second_app(BehindProxy)
    use_smtp(monkeypatch, proxied, smtp.port)
    body = {"email": "alice@example.com", "username": "alice", "password": PASSWORD}
    response = proxied.test_client().post(
        "/auth/signup",
        json=body,
        headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
    )
    assert response.status_code == 201
    assert mail.wait_for_pending(proxied, timeout=30)
    assert urlsplit(link_in(smtp.last("alice@example.com", SUBJECT))).netloc == "auth.example.test"


def test_the_link_keeps_the_public_url_path(app, client, smtp, auth, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://example.test/identity/")
    auth.signup()
    link = link_in(smtp.last("alice@example.com", SUBJECT))
    assert link.startswith("https://example.test/identity/auth/verify-email?token=")


def test_without_a_public_url_signup_works_and_the_gap_is_logged(
    app, client, smtp, auth, monkeypatch, caplog
):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", None)
    assert auth.signup().status_code == 201
    assert smtp.wait() == []
    assert "PUBLIC_BASE_URL is not set" in caplog.text


# --- operator CLI ---------------------------------------------------------------------


def test_cli_verify_email(runner, auth, in_db):
    auth.signup()
    result = runner.invoke(args=["users", "verify-email", "Alice@Example.com"])
    assert result.exit_code == 0, result.output
    assert "Marked alice@example.com as verified." in result.output
    verified = stored_user(in_db).email_verified
    assert verified is not None
    again = runner.invoke(args=["users", "verify-email", "alice@example.com"])
    assert again.exit_code == 0
    assert "already verified" in again.output
    assert stored_user(in_db).email_verified == verified


def test_cli_verify_email_unknown_account(runner):
    result = runner.invoke(args=["users", "verify-email", "nobody@example.com"])
    assert result.exit_code != 0
    assert "No user with email" in result.output


def test_cli_verify_email_sends_nothing(runner, auth, smtp):
    auth.signup()
    runner.invoke(args=["users", "verify-email", "alice@example.com"])
    assert len(smtp.wait()) == 1  # the signup's verification email only
