"""Delivery: message format, TLS and login, a dead or stalling server, the console backend."""

from __future__ import annotations

import logging
import re
import ssl
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme
from aiosmtpd.smtp import AuthResult
from flask import render_template

from auth_service.integrations import mail
from config import ConfigError, DevelopmentConfig, ProductionConfig, TestingConfig, load_config
from helpers import PASSWORD, PRODUCTION_SECRETS
from mail_helpers import SMTPServer, html_part, text_part, token_of, use_smtp

VERIFY = "Verify your email address"
MAIL_LOGGER = "auth_service.integrations.mail"


def mail_errors(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == MAIL_LOGGER and r.levelno >= logging.ERROR
    ]


def forgot(client, email="alice@example.com"):
    return client.post("/auth/forgot-password", json={"email": email})


# --- the message ----------------------------------------------------------------------


def test_a_message_has_a_text_and_an_html_part(smtp, auth):
    auth.signup()
    message = smtp.last("alice@example.com", VERIFY)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert text_part(message).startswith("Hi alice,")
    assert html_part(message).lstrip().startswith("<!doctype html>")
    for header in ("Date", "Message-ID", "From", "To", "Subject"):
        assert message[header], header
    assert message["Message-ID"].endswith("@auth.example.test>")
    assert message["Auto-Submitted"] == "auto-generated"


def test_user_data_is_escaped_in_html(client, smtp):
    email = "o'neil&co@example.com"
    assert (
        client.post(
            "/auth/signup", json={"email": email, "username": "oneil", "password": PASSWORD}
        ).status_code
        == 201
    )
    message = smtp.last(email, VERIFY)
    assert "o&#39;neil&amp;co@example.com" in html_part(message)
    assert email in text_part(message)


@pytest.mark.parametrize(
    "template", ["verify_email", "reset_password", "password_changed", "identity_linked"]
)
def test_templates_escape_markup(app, template):
    user = SimpleNamespace(email="x@example.com", username="<script>alert(1)</script>")
    context = {
        "user": user,
        "subject": "Subject",
        "link": "https://a.test/?token=x&y=<b>",
        "hours": 48,
        "minutes": 60,
        "changed_at": datetime(2030, 1, 1),
        "linked_at": datetime(2030, 1, 1),
        "provider": "Google",
        "password_removed": True,
    }
    with app.app_context():
        html = render_template(f"email/{template}.html", **context)
        text = render_template(f"email/{template}.txt", **context)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>" not in html
    assert "<script>" in text  # plain text is not markup


# --- TLS and login --------------------------------------------------------------------


@pytest.fixture
def ca(monkeypatch, tmp_path):
    """A test certificate authority that the app's TLS contexts trust (SSL_CERT_FILE)."""
    authority = trustme.CA()
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    return authority


def server_context(authority) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


def check_login(server, session, envelope, mechanism, auth_data):
    # handled=False: aiosmtpd answers a failure with 535 itself.
    ok = (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_server(app):
    servers = []

    def start(**options):
        servers.append(SMTPServer(app, **options).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_starttls_and_login(app, auth, monkeypatch, ca, tls_server):
    server = tls_server(
        tls_context=server_context(ca),
        require_starttls=True,
        auth_required=True,
        authenticator=check_login,
    )
    use_smtp(
        monkeypatch,
        app,
        server.port,
        MAIL_USE_TLS=True,
        MAIL_USERNAME="mailer",
        MAIL_PASSWORD="s3cret",
    )
    auth.signup()
    assert server.last("alice@example.com", VERIFY)


def test_implicit_tls(app, auth, monkeypatch, ca, tls_server):
    server = tls_server(ssl_context=server_context(ca))
    use_smtp(monkeypatch, app, server.port, MAIL_USE_SSL=True)
    auth.signup()
    assert server.last("alice@example.com", VERIFY)


def test_an_untrusted_certificate_is_refused(app, auth, monkeypatch, tls_server, caplog):
    server = tls_server(tls_context=server_context(trustme.CA()), require_starttls=True)
    use_smtp(monkeypatch, app, server.port, MAIL_USE_TLS=True)
    assert auth.signup().status_code == 201
    assert server.wait() == []
    [error] = mail_errors(caplog)
    assert "SSLCertVerificationError" in error


def test_wrong_credentials_are_logged(app, auth, monkeypatch, ca, tls_server, caplog):
    server = tls_server(
        tls_context=server_context(ca),
        require_starttls=True,
        auth_required=True,
        authenticator=check_login,
    )
    use_smtp(
        monkeypatch,
        app,
        server.port,
        MAIL_USE_TLS=True,
        MAIL_USERNAME="mailer",
        MAIL_PASSWORD="wrong",
    )
    assert auth.signup().status_code == 201
    assert server.wait() == []
    [error] = mail_errors(caplog)
    assert "SMTPAuthenticationError" in error
    assert "wrong" not in error


# --- a dead or slow mail server -------------------------------------------------------


def test_signup_and_forgot_password_survive_a_dead_mail_server(client, auth, closed_port, caplog):
    assert auth.signup().status_code == 201
    assert forgot(client).status_code == 202
    assert mail.wait_for_pending(timeout=30, app=client.application)
    errors = mail_errors(caplog)
    assert len(errors) == 2
    assert all("alice@example.com" in e and "ConnectionRefusedError" in e for e in errors)
    assert "token=" not in caplog.text


def test_a_stalling_server_does_not_hold_the_request(client, auth, smtp, caplog):
    smtp.stall()
    response = auth.signup()
    # The request is answered while the server still holds the message back.
    assert response.status_code == 201
    assert forgot(client).status_code == 202
    assert smtp.data_received.wait(30)
    assert smtp.messages == []
    smtp.release()
    assert len(smtp.wait()) == 2
    assert mail_errors(caplog) == []


def test_a_send_gives_up_after_mail_timeout(app, client, auth, smtp, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "MAIL_TIMEOUT", 1)
    smtp.stall()
    assert auth.signup().status_code == 201
    assert mail.wait_for_pending(app, timeout=30)  # returns once the send timed out
    [error] = mail_errors(caplog)
    assert "alice@example.com" in error and "timed out" in error


def test_a_full_queue_drops_and_logs(app, auth, smtp, monkeypatch, caplog):
    monkeypatch.setattr(mail, "MAX_PENDING", 0)
    assert auth.signup().status_code == 201
    assert smtp.wait() == []
    [error] = mail_errors(caplog)
    assert "already queued" in error


def test_wait_for_pending_reports_sends_still_running(app, auth, smtp):
    smtp.stall()
    auth.signup()
    assert smtp.data_received.wait(30)
    assert mail.wait_for_pending(app, timeout=0.01) is False
    smtp.release()
    assert mail.wait_for_pending(app, timeout=30) is True


# --- the console backend --------------------------------------------------------------


def test_the_console_backend_logs_the_email_with_its_link(client, auth, caplog):
    caplog.set_level("INFO", logger=MAIL_LOGGER)
    assert auth.signup().status_code == 201
    [record] = [r for r in caplog.records if r.name == MAIL_LOGGER]
    text = record.getMessage()
    assert "To: alice@example.com" in text and VERIFY in text
    link = next(word for word in text.split() if word.startswith("https://"))
    response = client.post("/auth/verify-email", json={"token": token_of(link)})
    assert response.json["status"] == "verified"


def test_development_logs_emails_and_production_sends_them():
    assert DevelopmentConfig.MAIL_BACKEND == "console"
    assert DevelopmentConfig.PUBLIC_BASE_URL.startswith("http://127.0.0.1:")
    assert ProductionConfig.MAIL_BACKEND == "smtp"
    assert ProductionConfig.PUBLIC_BASE_URL is None


# --- settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, match",
    [
        ({"MAIL_BACKEND": "sendmail"}, "MAIL_BACKEND"),
        ({"MAIL_USE_TLS": "true", "MAIL_USE_SSL": "true"}, "MAIL_USE_TLS"),
        ({"PUBLIC_BASE_URL": "auth.example.com"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "ftp://auth.example.com"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "https://auth.example.com/?next=x"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "https://auth.example.com/#top"}, "PUBLIC_BASE_URL"),
        ({"MAIL_PORT": "smtp"}, "MAIL_PORT"),
        ({"EMAIL_VERIFY_TOKEN_MAX_AGE": "2d"}, "EMAIL_VERIFY_TOKEN_MAX_AGE"),
    ],
)
def test_bad_mail_settings_are_refused(environ, match):
    with pytest.raises(ConfigError, match=match):
        load_config(ProductionConfig, environ={**PRODUCTION_SECRETS, **environ})


def test_mail_settings_from_the_environment():
    settings = load_config(
        ProductionConfig,
        environ={
            **PRODUCTION_SECRETS,
            "MAIL_SERVER": "smtp.example.com",
            "MAIL_PORT": "587",
            "MAIL_USE_TLS": "true",
            "MAIL_USERNAME": "apikey",
            "MAIL_PASSWORD": "pw",
            "MAIL_FROM": "Example <no-reply@example.com>",
            "MAIL_TIMEOUT": "5",
            "PUBLIC_BASE_URL": "https://auth.example.com",
            "PASSWORD_RESET_TOKEN_MAX_AGE": "600",
        },
    )
    assert (settings["MAIL_SERVER"], settings["MAIL_PORT"], settings["MAIL_USE_TLS"]) == (
        "smtp.example.com",
        587,
        True,
    )
    assert settings["PASSWORD_RESET_TOKEN_MAX_AGE"].total_seconds() == 600
    assert settings["PUBLIC_BASE_URL"] == "https://auth.example.com"


def test_production_without_a_public_url_warns(second_app, caplog):
    class NoPublicURL(ProductionConfig):
        SECRET_KEY = PRODUCTION_SECRETS["SECRET_KEY"]
        JWT_SECRET_KEY = PRODUCTION_SECRETS["JWT_SECRET_KEY"]
        KEY_ENCRYPTION_KEY = PRODUCTION_SECRETS["KEY_ENCRYPTION_KEY"]
        DATABASE_URL = TestingConfig.DATABASE_URL
        READ_ENVIRONMENT = False

    second_app(NoPublicURL)
    assert "PUBLIC_BASE_URL is not set" in caplog.text


# --- documentation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, method",
    [
        ("/auth/verify-email", "get"),
        ("/auth/verify-email", "post"),
        ("/auth/verify-email/resend", "post"),
        ("/auth/forgot-password", "post"),
        ("/auth/reset-password", "get"),
        ("/auth/reset-password", "post"),
    ],
)
def test_the_endpoints_are_documented(client, path, method):
    operation = client.get("/openapi.json").json["paths"][path][method]
    assert operation["summary"]
    expected = [{"bearerAuth": []}] if path.endswith("resend") else None
    assert operation.get("security") == expected


def test_an_international_address_is_delivered(client, smtp):
    # The domain travels in its DNS (A-label) form, the account's canonical address.
    email = "josé@xn--bcher-kva.example"
    assert (
        client.post(
            "/auth/signup",
            json={"email": "josé@bücher.example", "username": "jose", "password": PASSWORD},
        ).status_code
        == 201
    )
    [message] = smtp.wait()
    assert message["To"] == email
    assert smtp.envelopes[0].rcpt_tos == [email]


def test_a_refused_signup_sends_nothing(client, smtp, auth):
    auth.signup()
    assert auth.signup().status_code == 409
    assert len(smtp.wait()) == 1


ROOT = Path(__file__).resolve().parents[2]
EMAIL_SETTINGS = [
    "PUBLIC_BASE_URL",
    "EMAIL_VERIFY_TOKEN_MAX_AGE",
    "PASSWORD_RESET_TOKEN_MAX_AGE",
    "MAIL_BACKEND",
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_USE_TLS",
    "MAIL_USE_SSL",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_FROM",
    "MAIL_TIMEOUT",
    "RATELIMIT_VERIFY_RESEND_PER_IP",
    "RATELIMIT_VERIFY_RESEND_PER_ACCOUNT",
    "RATELIMIT_FORGOT_PASSWORD_PER_IP",
    "RATELIMIT_FORGOT_PASSWORD_PER_ACCOUNT",
]


@pytest.mark.parametrize("key", EMAIL_SETTINGS)
def test_every_email_setting_is_configured_and_documented(key):
    assert hasattr(ProductionConfig, key)
    assert re.search(
        rf"^\| `{key}` \|", (ROOT / "docs" / "configuration.md").read_text(), re.MULTILINE
    )
    assert re.search(rf"^#? ?{key}=", (ROOT / ".env.example").read_text(), re.MULTILINE)
