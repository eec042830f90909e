"""deploy/prometheus.yml and deploy/prometheus-alerts.yml, checked without Prometheus:
their structure, that every alert reads metrics and label values the app writes, and
that nginx keeps /metrics to itself. With promtool on PATH, promtool checks them too."""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import Counter, Histogram

from auth_service.observability import metrics
from helpers import unavailable

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# Metric names in an expression, and label matchers: name op "value".
METRIC_NAME = re.compile(r"\b(auth_service_[a-z_]+|up)\b")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
# The series each metric of the app writes (counters end in _total, histograms in
# _bucket, _count and _sum).
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


@pytest.fixture(autouse=True)
def clean_db():
    """No database here (overrides the suite's per-test cleanup)."""
    yield


@pytest.fixture(scope="module")
def scrape_config() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus.yml").read_text())


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    document = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    assert set(document) == {"groups"}
    return [rule for group in document["groups"] for rule in group["rules"]]


def series_names() -> set[str]:
    names = {"up"}
    for metric in vars(metrics).values():
        if isinstance(metric, (Counter, Histogram)):
            for family in metric.describe():
                names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def label_values(app) -> dict[str, set[str]]:
    return {
        "result": set(metrics.LOGIN_RESULTS + metrics.REFRESH_RESULTS + metrics.EMAIL_RESULTS),
        "endpoint": set(app.view_functions) | {metrics.UNMATCHED},
        "operation": set(metrics.HASH_OPERATIONS),
    }


def test_the_scrape_example_scrapes_each_instance_and_loads_the_rules(scrape_config):
    (job,) = scrape_config["scrape_configs"]
    assert job["job_name"] == "auth_service"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["app1:8000", "app2:8000"]
    assert scrape_config["rule_files"] == ["prometheus-alerts.yml"]
    assert (DEPLOY / scrape_config["rule_files"][0]).is_file()


def test_the_rules_alert_on_the_events_that_matter(rules):
    names = {rule["alert"] for rule in rules}
    assert {
        "AuthServiceRefreshReuse",
        "AuthServiceLoginFailureSpike",
        "AuthServiceServerErrors",
        "AuthServiceNotReady",
        "AuthServiceDown",
    } <= names
    assert len(names) == len(rules), "an alert name is used twice"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), rule["alert"]


def test_every_expression_reads_what_the_app_writes(rules, app):
    known_series = series_names()
    known_values = label_values(app)
    for rule in rules:
        expr = rule["expr"]
        used = set(METRIC_NAME.findall(expr))
        assert used, rule["alert"]
        assert used <= known_series, (rule["alert"], used - known_series)
        for label, operator, wanted in MATCHER.findall(expr):
            if label == "status":
                assert re.fullmatch(r"[1-5](\d\d|\.\.)", wanted), (rule["alert"], wanted)
            elif label in known_values:
                alternatives = wanted.split("|") if "~" in operator else [wanted]
                assert set(alternatives) <= known_values[label], (rule["alert"], wanted)
            else:
                assert label == "job" and wanted == "auth_service", (rule["alert"], label)


def test_promtool_accepts_the_files():
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed", ".ci/run installs Debian's prometheus")
    for args in (
        ["check", "rules", "prometheus-alerts.yml"],
        ["check", "config", "prometheus.yml"],
    ):
        result = subprocess.run(
            [promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_answers_metrics_itself():
    text = (DEPLOY / "nginx.conf").read_text()
    block = re.search(r"location \^~ /metrics \{(.*?)\n    \}", text, re.S)
    assert block, "deploy/nginx.conf must not pass /metrics on"
    assert "return 404" in block.group(1)
    assert "proxy_pass" not in block.group(1)


# --- gunicorn.conf.py's multiprocess directory ----------------------------------------


def read_gunicorn_conf(monkeypatch, **environ) -> dict:
    for key in ("PROMETHEUS_MULTIPROC_DIR", "LOG_REQUESTS", "ARGON2_CONCURRENCY"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_leaves_the_multiprocess_mode_off_without_metrics(monkeypatch):
    read_gunicorn_conf(monkeypatch, METRICS_ENABLED="false")
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_gunicorn_gives_its_workers_a_directory_of_its_own(monkeypatch):
    conf = read_gunicorn_conf(monkeypatch, METRICS_ENABLED="true")
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    try:
        assert directory.name == f"auth_service-metrics-{os.getpid()}"
        assert directory.is_dir()
        stale = directory / "counter_1.db"
        stale.write_bytes(b"")
        conf["on_starting"](None)  # a previous run's counts go
        assert not stale.exists()
        conf["child_exit"](None, SimpleNamespace(pid=12345))
        conf["on_exit"](None)
        assert not directory.exists()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_gunicorn_keeps_a_directory_it_is_given(monkeypatch, tmp_path):
    given = tmp_path / "metrics"
    conf = read_gunicorn_conf(
        monkeypatch, METRICS_ENABLED="true", PROMETHEUS_MULTIPROC_DIR=str(given)
    )
    assert given.is_dir()
    (given / "histogram_7.db").write_bytes(b"")
    (given / "notes.txt").write_text("not ours")
    conf["on_starting"](None)
    conf["on_exit"](None)
    assert [path.name for path in given.iterdir()] == ["notes.txt"]
