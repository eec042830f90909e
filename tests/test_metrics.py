"""Prometheus metrics: off by default, /metrics only for METRICS_ALLOW (as the app sees
the client), every outcome counted once under its label, and every label value from a
fixed set. Scrapes are parsed with prometheus-client's own parser.

The metric objects are one per process, shared by every app of the suite: each test
compares a scrape after its actions with one before. tests/integration/test_metrics.py
scrapes gunicorn's two workers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from auth_service.extensions import db
from auth_service.integrations import mail
from auth_service.observability import metrics
from auth_service.persistence.models import User
from auth_service.security import limits as rate_limits
from auth_service.security.password_attempts import budget_name
from config import TestingConfig, is_limit_setting
from helpers import (
    PASSWORD,
    WRONG_PASSWORD,
    assert_error,
    client_from,
    login,
    metric_value,
    parse_metrics,
    refresh,
)


class MetricsConfig(TestingConfig):
    METRICS_ENABLED = True


class ProxiedMetricsConfig(MetricsConfig):
    TRUSTED_PROXIES = 1


class NetworkMetricsConfig(MetricsConfig):
    METRICS_ALLOW = ("10.0.0.0/8",)


class DatabaseDownConfig(MetricsConfig):
    """Port 1 on localhost refuses connections at once."""

    DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:1/none"


@pytest.fixture
def metrics_app(make_app):
    return make_app(MetricsConfig)


@pytest.fixture
def scrape(metrics_app):
    """GET /metrics from 127.0.0.1, parsed: {(sample name, sorted labels): value}."""

    def get() -> dict:
        response = metrics_app.test_client().get("/metrics")
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/plain"
        return parse_metrics(response.get_data(as_text=True))

    return get


class Delta:
    """``delta("auth_service_logins_total", result="success")``: the change since it
    was made."""

    def __init__(self, scrape):
        self.scrape, self.before = scrape, scrape()
        self.after = None

    def __call__(self, name: str, **labels) -> float:
        self.after = self.after or self.scrape()
        return metric_value(self.after, name, **labels) - metric_value(self.before, name, **labels)


@pytest.fixture
def delta(scrape):
    return lambda: Delta(scrape)


LOGINS = "auth_service_logins_total"
REFRESHES = "auth_service_refreshes_total"


def login_counts(changes: Delta) -> dict[str, float]:
    return {
        result: changes(LOGINS, result=result)
        for result in metrics.LOGIN_RESULTS
        if changes(LOGINS, result=result)
    }


def refresh_counts(changes: Delta) -> dict[str, float]:
    return {
        result: changes(REFRESHES, result=result)
        for result in metrics.REFRESH_RESULTS
        if changes(REFRESHES, result=result)
    }


# --- on, off, and who may read them ---------------------------------------------------


def test_off_by_default(client):
    assert_error(client.get("/metrics"), 404, "not_found")


def test_not_in_the_openapi_document(metrics_app):
    paths = metrics_app.test_client().get("/openapi.json").json["paths"]
    assert not [path for path in paths if "metrics" in path]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_served_to_loopback_by_default(metrics_app, address):
    response = client_from(metrics_app, address).get("/metrics")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "auth_service_logins_total" in response.get_data(as_text=True)


@pytest.mark.parametrize("address", ["192.0.2.10", "10.0.0.1", "2001:db8::1", "127.0.0.1x"])
def test_refused_to_other_addresses(metrics_app, address):
    response = client_from(metrics_app, address).get("/metrics")
    body = assert_error(response, 403, "forbidden")
    assert body["message"] == "Metrics are not served to this address."
    assert "auth_service_" not in response.get_data(as_text=True)


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(make_app, metrics_app):
    # Behind one proxy the app believes the proxy's X-Forwarded-For: the client is outside.
    proxied = client_from(make_app(ProxiedMetricsConfig), "127.0.0.1")
    outside = proxied.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"})
    assert_error(outside, 403, "forbidden")
    inside = proxied.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert inside.status_code == 200
    # With no trusted proxy the header is the client's own word, and ignored.
    direct = client_from(metrics_app, "192.0.2.10")
    forged = direct.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert_error(forged, 403, "forbidden")


def test_metrics_allow_names_the_networks(make_app):
    app = make_app(NetworkMetricsConfig)
    assert client_from(app, "10.20.30.40").get("/metrics").status_code == 200
    assert_error(client_from(app, "127.0.0.1").get("/metrics"), 403, "forbidden")


# --- what is counted ------------------------------------------------------------------


def test_requests_by_endpoint_method_and_status(metrics_app, delta):
    client = metrics_app.test_client()
    changes = delta()
    assert client.get("/healthz").status_code == 200
    assert client.get("/auth/me").status_code == 401
    assert client.get("/no/such/alice@example.com").status_code == 404
    assert client.open("/healthz", method="BREW").status_code == 405
    requests = "auth_service_http_requests_total"
    assert changes(requests, endpoint="health.healthz", method="GET", status="200") == 1
    assert changes(requests, endpoint="auth.me", method="GET", status="401") == 1
    assert changes(requests, endpoint="unmatched", method="GET", status="404") == 1
    assert changes(requests, endpoint="unmatched", method="other", status="405") == 1
    duration = "auth_service_http_request_duration_seconds_count"
    assert changes(duration, endpoint="health.healthz", status="200") == 1
    assert changes("auth_service_http_request_duration_seconds_bucket", endpoint="auth.me",
                   status="401", le="+Inf") == 1  # fmt: skip


def test_logins_by_result(auth, client, in_db, limits, delta):
    auth.signup()
    changes = delta()
    assert login(client).status_code == 200
    assert login(client, password=WRONG_PASSWORD).status_code == 401
    assert login(client, email="nobody@example.com").status_code == 401

    def deactivate():
        db.session.execute(sa.update(User).values(is_active=False))

    in_db(deactivate)
    assert login(client).status_code == 401
    assert login_counts(changes) == {
        "success": 1,
        "wrong_password": 1,
        "unknown_account": 1,
        "inactive": 1,
    }


def test_rate_limited_logins_count_as_such_and_by_limit(auth, client, limits, delta):
    auth.signup()
    limits(LOGIN_FAILURES_PER_ACCOUNT_IP="1 per minute", LOGIN_PER_IP="3 per minute")
    changes = delta()
    assert login(client, password=WRONG_PASSWORD).status_code == 401
    assert login(client, password=WRONG_PASSWORD).status_code == 429  # alice's budget
    assert login(client, email="nobody@example.com").status_code == 401
    assert login(client).status_code == 429  # the fourth attempt from this address
    assert login_counts(changes) == {
        "wrong_password": 1,
        "unknown_account": 1,
        "rate_limited": 2,
    }
    limited = "auth_service_rate_limited_total"
    assert changes(limited, limit="login-failures-per-account-ip") == 1
    assert changes(limited, limit="login-ip") == 1


def test_a_login_that_needs_a_second_step(enrolled, auth, delta):
    changes = delta()
    response = auth.login()
    assert response.json["mfa_required"] is True
    assert login_counts(changes) == {"mfa_challenge": 1}


def test_refreshes_by_result(auth, client, delta):
    first = auth.signup_and_login()["refresh_token"]
    changes = delta()
    second = refresh(client, first).json["refresh_token"]
    assert refresh(client, first).json["refresh_token"] == second  # the grace window
    assert_error(refresh(client, first), 401, "token_reused")  # the one answer is spent
    assert_error(refresh(client, second), 401, "token_revoked")
    assert_error(refresh(client, "not.a.token"), 401, "invalid_token")
    expiring = login(client).json["refresh_token"]
    with freeze_time(datetime.now(UTC) + timedelta(days=8)):
        assert_error(refresh(client, expiring), 401, "token_expired")
    assert refresh_counts(changes) == {
        "rotated": 1,
        "grace": 1,
        "reused": 1,
        "revoked": 1,
        "invalid": 1,
        "expired": 1,
    }


def test_password_hashes_are_timed(auth, delta):
    changes = delta()
    auth.signup_and_login()
    count = "auth_service_password_hash_seconds_count"
    assert changes(count, operation="hash") == 1
    assert changes(count, operation="verify") == 1
    assert changes("auth_service_password_hash_seconds_sum", operation="verify") > 0


def test_emails_sent_and_failed(app, smtp, auth, delta):
    changes = delta()
    assert auth.signup().status_code == 201
    mail.wait_for_pending(app, timeout=10)
    assert len(smtp.messages) == 1
    with app.app_context():
        message = mail.build_message("alice@example.com", "Hi", "text", "<p>html</p>")
        settings = {key: app.config[key] for key in mail.SMTP_KEYS} | {"MAIL_PORT": 1}
    assert mail.deliver(message, settings) is False
    emails = "auth_service_emails_total"
    assert (changes(emails, result="sent"), changes(emails, result="failed")) == (1, 1)


def test_database_errors(make_app, scrape):
    before = scrape()
    down = make_app(DatabaseDownConfig).test_client()
    assert_error(down.get("/readyz"), 503, "database_unavailable")
    after = scrape()
    errors = "auth_service_database_errors_total"
    assert (
        metric_value(after, errors, error="OperationalError")
        - metric_value(before, errors, error="OperationalError")
        == 1
    )
    # Counted by the app that failed (same process), timed as the request it answered.
    requests = "auth_service_http_requests_total"
    labels = {"endpoint": "health.readyz", "method": "GET", "status": "503"}
    assert metric_value(after, requests, **labels) - metric_value(before, requests, **labels) == 1


# --- bounded labels -------------------------------------------------------------------


def every_limit_name() -> set[str]:
    """The scopes of the limits in security/limits.py and the failure budgets' names."""
    source = Path(rate_limits.__file__).read_text()
    scopes = set(re.findall(r'Limit\("RATELIMIT_[A-Z_]+", "([a-z-]+)"', source))
    budgets = {budget_name(key) for key in dir(TestingConfig) if is_limit_setting(key)}
    return scopes | budgets


def test_every_label_value_is_from_a_fixed_set(metrics_app, auth, client, scrape, limits):
    """After requests with emails, ids, tokens and invented paths and methods in them,
    no label holds anything but an endpoint name, a method, a status or a listed value."""
    tokens = auth.signup_and_login()
    pages = metrics_app.test_client()
    user_id = pages.get("/auth/me", headers=auth.bearer(tokens["access_token"])).json["id"]
    pages.get(f"/users/{user_id}")
    pages.get("/alice@example.com/" + tokens["refresh_token"])
    pages.open("/auth/login", method="X-" + tokens["access_token"][:20])
    limits(LOGIN_PER_IP="1 per minute")
    login(client, password=PASSWORD)
    samples = scrape()
    text = metrics_app.test_client().get("/metrics").get_data(as_text=True)
    for secret in ("alice@example.com", PASSWORD, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in text
    allowed = {
        "endpoint": set(metrics_app.view_functions) | {metrics.UNMATCHED},
        "method": metrics.METHODS | {"other"},
        "result": set(metrics.LOGIN_RESULTS + metrics.REFRESH_RESULTS + metrics.EMAIL_RESULTS),
        "limit": every_limit_name(),
        "operation": set(metrics.HASH_OPERATIONS),
        "error": {
            "OperationalError",
            "ProgrammingError",
            "InterfaceError",
            "DatabaseError",
            "DataError",
            "InternalError",
            "NotSupportedError",
            "DBAPIError",
        },  # fmt: skip
    }
    ours = [(name, labels) for name, labels in samples if name.startswith("auth_service_")]
    assert len(ours) > 20
    for name, labels in ours:
        for label, label_value in labels:
            if label == "status":
                assert re.fullmatch(r"[1-5]\d\d", label_value), (name, label_value)
            elif label == "le":
                assert label_value == "+Inf" or float(label_value) in (
                    metrics.REQUEST_BUCKETS + metrics.HASH_BUCKETS
                )
            else:
                assert label_value in allowed[label], (name, label, label_value)


def test_a_process_started_before_gunicorn_makes_the_directory(tmp_path):
    """The entrypoint's `flask db upgrade` runs before gunicorn has made the directory."""
    directory = tmp_path / "not-yet"
    subprocess.run(
        [sys.executable, "-c", "from auth_service.observability import metrics"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        timeout=60,
    )
    assert any(directory.glob("counter_*.db"))
