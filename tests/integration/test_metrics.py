"""/metrics under gunicorn's workers, parsed with prometheus-client's own parser.

One instance of our own (two workers, SQLite, nothing but Python needed) shows the
counts of every worker summed, whichever worker answers the scrape, and the counts of a
previous run gone; the deployed stack shows nginx keeping /metrics to itself and the app
refusing an address outside METRICS_ALLOW.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deploy_stack import (
    CLIENT_ADDRESS,
    ROOT,
    VENV_BIN,
    free_port,
    local_session,
    spawn,
    stop_process,
    tail,
    wait_until,
)
from helpers import metric_value, parse_metrics

START_TIMEOUT = 60
UNKNOWN = {"email": "nobody@example.com", "password": "not the password"}


def environment(workdir: Path, metrics_dir: Path, port: int) -> dict[str, str]:
    return {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", str(workdir)),
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DATABASE_URL": f"sqlite:///{workdir / 'metrics.db'}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_MAX_REQUESTS": "0",
        "METRICS_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **{
            f"RATELIMIT_{name}": "10000 per minute"
            for name in ("LOGIN_PER_IP", "LOGIN_FAILURES_PER_IP", "LOGIN_FAILURES_PER_ACCOUNT_IP")
        },
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT": "10000 per minute",
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CEILING": "10000 per minute",
    }


def leave_stale_counts(metrics_dir: Path, environ: dict) -> None:
    """What a previous run would leave: a dead worker's file with 1000 successful logins."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from auth_service.observability import metrics; "
            "metrics.LOGINS.labels('success').inc(1000)",
        ],
        env=environ,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    assert any(metrics_dir.glob("counter_*.db"))


@pytest.fixture
def two_workers(tmp_path):
    """gunicorn (gunicorn.conf.py, two workers) through the container's entrypoint."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    environ = environment(tmp_path, metrics_dir, port)
    leave_stale_counts(metrics_dir, environ)
    log = tmp_path / "gunicorn.log"
    process = spawn(
        ["sh", str(ROOT / "deploy" / "docker-entrypoint.sh")], log, cwd=ROOT, env=environ
    )
    url = f"http://127.0.0.1:{port}"
    session = local_session()
    try:
        wait_until(
            lambda: process.poll() is None and session.get(url + "/readyz").status_code == 200,
            START_TIMEOUT,
            "gunicorn",
            log=log,
        )
        yield url, log
    finally:
        session.close()
        stop_process(process)
    assert process.returncode is not None, tail(log)


def workers_that_served(log: Path, path: str) -> Counter:
    """pid -> requests to ``path`` in gunicorn's JSON access lines."""
    served = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "gunicorn.access" and entry.get("path") == path:
                served[entry["pid"]] += 1
    return served


def post_logins(url: str, count: int) -> list[int]:
    """``count`` logins of an unknown account, eight at a time, each on its own connection."""

    def one(_):
        with local_session() as session:
            return session.post(url + "/auth/login", json=UNKNOWN, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def test_counts_are_summed_over_both_workers(two_workers):
    url, log = two_workers
    sent = []
    # Until both workers have served some: the kernel, not the test, picks the worker.
    for _ in range(20):
        sent += post_logins(url, 16)
        if len(workers_that_served(log, "/auth/login")) == 2:
            break
    assert set(sent) == {401}
    wait_until(lambda: sum(workers_that_served(log, "/auth/login").values()) == len(sent), 5, "log")
    served = workers_that_served(log, "/auth/login")
    assert len(served) == 2, served
    # Each scrape is answered by one worker or the other; every one sums both.
    with local_session() as session:
        scrapes = [session.get(url + "/metrics", timeout=10) for _ in range(6)]
    assert {response.status_code for response in scrapes} == {200}
    assert len(workers_that_served(log, "/metrics")) >= 1
    for response in scrapes:
        assert response.headers["Content-Type"].startswith("text/plain")
        samples = parse_metrics(response.text)
        logins = "auth_service_logins_total"
        assert metric_value(samples, logins, result="unknown_account") == len(sent)
        # The previous run's file was removed when gunicorn started (on_starting).
        assert metric_value(samples, logins, result="success") == 0
        requests = "auth_service_http_requests_total"
        labels = {"endpoint": "auth.login", "method": "POST", "status": "401"}
        assert metric_value(samples, requests, **labels) == len(sent)
        hashes = "auth_service_password_hash_seconds_count"
        assert metric_value(samples, hashes, operation="verify") == len(sent)


def test_nginx_does_not_pass_metrics_on(stack, http):
    for base in (stack.plain.url, stack.edge.https_url):
        for path in ("/metrics", "/metrics/", "/%6detrics", "//metrics"):
            response = http.get(base + path, timeout=5, allow_redirects=False)
            assert response.status_code == 404, (base, path)
            assert response.json()["error"] == "not_found"
            assert "auth_service_" not in response.text


def test_each_instance_serves_its_metrics_to_loopback_only(stack, direct):
    for app in stack.apps:
        response = direct.get(app.url + "/metrics", timeout=5)
        assert response.status_code == 200
        samples = parse_metrics(response.text)
        assert ("auth_service_logins_total", (("result", "success"),)) in samples
        # 127.0.0.2 is loopback, but not in the default METRICS_ALLOW (127.0.0.1/32, ::1).
        with local_session(CLIENT_ADDRESS) as other:
            refused = other.get(app.url + "/metrics", timeout=5)
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
