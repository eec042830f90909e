"""One structured log line per request, the X-Request-ID, and the JSON log format."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import pytest

from auth_service import create_app
from auth_service.observability.request_log import (
    REQUEST_ID_HEADER,
    USER_ID_ENVIRON_KEY,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
)
from config import DevelopmentConfig, TestingConfig, load_config
from helpers import PASSWORD, claims

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
FIELDS = {"method", "path", "status", "duration_ms", "request_id", "user_id", "client_ip"}


@pytest.fixture
def request_lines(caplog):
    """The request log records written so far (a function: call it after the requests)."""
    caplog.set_level(logging.INFO, logger="auth_service.request")
    return lambda: [r for r in caplog.records if r.name == "auth_service.request"]


def only_line(request_lines) -> logging.LogRecord:
    (record,) = request_lines()
    return record


def as_json(record: logging.LogRecord) -> dict:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


# --- the request line -----------------------------------------------------------------


def test_anonymous_request_is_logged_once_with_every_field(client, request_lines):
    response = client.get("/healthz")
    entry = as_json(only_line(request_lines))
    assert FIELDS <= entry.keys()
    assert entry["message"] == "GET /healthz 200"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    assert entry["request_id"] == response.headers[REQUEST_ID_HEADER]
    assert entry["user_id"] is None
    assert entry["client_ip"] == "127.0.0.1"
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["level"] == "INFO" and entry["logger"] == "auth_service.request"


def test_user_id_is_logged_once_a_token_is_verified(
    client, alice_tokens, alice_headers, request_lines
):
    client.get("/auth/me", headers=alice_headers)
    record = request_lines()[-1]
    assert record.path == "/auth/me" and record.status == 200
    assert record.user_id == int(claims(alice_tokens["access_token"])["sub"])


def test_a_successful_login_logs_the_account_it_signed_in(client, alice_tokens, request_lines):
    response = client.post("/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 200
    record = request_lines()[-1]
    assert (record.path, record.status) == ("/auth/login", 200)
    assert record.user_id == int(claims(alice_tokens["access_token"])["sub"])


def test_a_failed_login_logs_no_user_id(client, alice_tokens, request_lines):
    response = client.post("/auth/login", json={"email": "alice@example.com", "password": "nope"})
    assert response.status_code == 401
    assert request_lines()[-1].user_id is None


def test_refused_token_logs_no_user_id(client, alice_tokens, request_lines):
    client.get(
        "/auth/me", headers={"Authorization": "Bearer " + alice_tokens["access_token"][:-3] + "AAA"}
    )
    record = request_lines()[-1]
    assert (record.status, record.user_id) == (401, None)


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        ("get", "/nowhere", {}, 404),
        ("post", "/auth/login", {"data": "x", "content_type": "text/plain"}, 415),
        (
            "post",
            "/auth/login",
            {"json": {"email": "a@example.com", "password": "x" * 70_000}},
            413,
        ),
        ("delete", "/auth/login", {}, 405),
        (
            "post",
            "/auth/login",
            {"json": {"email": "nobody@example.com", "password": "wrong-pass"}},
            401,
        ),
    ],
)
def test_error_responses_are_logged_with_their_status(
    client, request_lines, method, path, kwargs, status
):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    record = only_line(request_lines)
    assert (record.method, record.path, record.status) == (method.upper(), path, status)
    assert record.request_id == response.headers[REQUEST_ID_HEADER]


def test_no_secret_reaches_the_log(client, auth, request_lines):
    auth.signup()
    tokens = auth.login().json
    client.get(
        "/auth/me?access_token=" + tokens["access_token"],
        headers={**auth.bearer(tokens["access_token"]), "Cookie": "session=cookie-value"},
    )
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    client.post("/auth/logout", headers=auth.bearer(tokens["access_token"]))
    lines = [JsonFormatter().format(r) for r in request_lines()]
    assert len(lines) == 5
    text = "\n".join(lines)
    for secret in (
        PASSWORD,
        tokens["access_token"],
        tokens["refresh_token"],
        "cookie-value",
        "access_token=",
        "Bearer",
    ):
        assert secret not in text
    assert json.loads(lines[2])["path"] == "/auth/me"


def test_an_absurd_path_is_truncated(client, request_lines):
    client.get("/" + "a" * 5000)
    assert len(only_line(request_lines).path) == 512


# --- X-Request-ID ---------------------------------------------------------------------


def test_a_request_id_is_generated_when_none_is_sent(client):
    first = client.get("/healthz").headers[REQUEST_ID_HEADER]
    second = client.get("/healthz").headers[REQUEST_ID_HEADER]
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second)
    assert first != second


@pytest.mark.parametrize(
    "incoming",
    [
        "3f1c0e6e-6a55-4c51-9d1b-2f7c2a3c9e10",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "a",
        "x" * 128,
        'req:42/retry=1;"quoted"',
    ],
)
def test_an_acceptable_request_id_is_passed_through(client, request_lines, incoming):
    response = client.get("/auth/token-info", headers={REQUEST_ID_HEADER: incoming})
    assert response.headers[REQUEST_ID_HEADER] == incoming
    assert only_line(request_lines).request_id == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "",
        "x" * 129,
        "has space",
        "tab\tinside",
        "caf\u00e9",
        "new\x7fline",
        "\x1b[31mred",
    ],
    ids=["empty", "129-chars", "space", "tab", "non-ascii", "del", "escape"],
)
def test_an_unacceptable_request_id_is_replaced(client, request_lines, incoming):
    response = client.get("/healthz", headers={REQUEST_ID_HEADER: incoming})
    replaced = response.headers[REQUEST_ID_HEADER]
    assert GENERATED_ID.fullmatch(replaced)
    assert only_line(request_lines).request_id == replaced


def test_error_responses_carry_the_request_id(client):
    response = client.get("/nowhere", headers={REQUEST_ID_HEADER: "trace-404"})
    assert response.status_code == 404
    assert response.headers[REQUEST_ID_HEADER] == "trace-404"


# --- client IP behind a proxy ---------------------------------------------------------


class OneProxyConfig(TestingConfig):
    TRUSTED_PROXIES = 1


@pytest.fixture(scope="module")
def proxied_client():
    """An app told that one proxy (nginx) stands in front of it."""
    return create_app(OneProxyConfig).test_client()


def test_client_ip_comes_from_the_trusted_proxy(proxied_client, request_lines):
    proxied_client.get(
        "/healthz",
        headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.9"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    # nginx appended the address it saw (198.51.100.9); whatever the client wrote before it is not believed.
    assert only_line(request_lines).client_ip == "198.51.100.9"


def test_forwarded_for_is_ignored_without_a_trusted_proxy(client, request_lines):
    client.get(
        "/healthz",
        headers={"X-Forwarded-For": "203.0.113.7"},
        environ_base={"REMOTE_ADDR": "192.0.2.10"},
    )
    assert only_line(request_lines).client_ip == "192.0.2.10"


# --- formatter, filter and handler ----------------------------------------------------


def test_json_formatter_writes_one_line_with_extras_and_exceptions():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.getLogger("auth_service.x").makeRecord(
            "auth_service.x",
            logging.ERROR,
            __file__,
            1,
            "failed: %s",
            ("a\nb",),
            sys.exc_info(),
            extra={"user_id": 5},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed: a\nb"
    assert entry["user_id"] == 5
    assert entry["level"] == "ERROR"
    assert "ValueError: boom" in entry["exc_info"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["ts"])
    assert not {"args", "msg", "levelno", "pathname"} & entry.keys()


def test_every_line_written_during_a_request_carries_its_id(app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.request_log")
    logger.addHandler(handler)
    try:
        with app.test_request_context(headers={REQUEST_ID_HEADER: "trace-7"}):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == "trace-7"
    assert "request_id" not in outside


@pytest.fixture
def bare_root(monkeypatch):
    """The root logger emptied of handlers (as under gunicorn) inside the test; restored after.

    A function, since pytest adds its own capture handlers once the test starts.
    """

    def empty():
        root = logging.getLogger()
        monkeypatch.setattr(root, "handlers", [])
        return root

    return empty


def test_configure_logging_installs_one_handler_and_switches_format(bare_root):
    root = bare_root()
    configure_logging(json_lines=True)
    configure_logging(json_lines=True)
    (handler,) = root.handlers
    assert isinstance(handler.formatter, JsonFormatter)
    configure_logging(json_lines=False)
    assert root.handlers == [handler]
    assert not isinstance(handler.formatter, JsonFormatter)


def test_configure_logging_leaves_someone_elses_handlers_alone(bare_root):
    root = bare_root()
    theirs = logging.NullHandler()
    root.handlers.append(theirs)
    configure_logging(json_lines=True)
    assert root.handlers == [theirs]
    assert theirs.formatter is None


def text_log(bare_root) -> io.StringIO:
    """Where the app's own handler writes in text mode (LOG_JSON=false)."""
    root = bare_root()
    configure_logging(json_lines=False)
    (handler,) = root.handlers
    stream = io.StringIO()
    handler.setStream(stream)
    return stream


FORGED = "2030-01-01 12:00:00,000 INFO auth_service.request: GET /admin 200"


@pytest.mark.parametrize(
    "path, shown",
    [
        ("/x%0a" + FORGED.replace(" ", "%20"), "/x\\n2030-01-01"),
        ("/x%0d%0a" + FORGED.replace(" ", "%20"), "/x\\r\\n2030-01-01"),
        ("/x%0dFORGED", "/x\\rFORGED"),
        ("/x%e2%80%a8FORGED%e2%80%a9", "/x\\u2028FORGED\\u2029"),
        ("/x%c2%85FORGED", "/x\\x85FORGED"),
        ("/x%0b%0c%1c%1d%1eFORGED", "/x\\x0b\\x0c\\x1c\\x1d\\x1eFORGED"),
        ("/x%1b[2J%7f%09FORGED", "/x\\x1b[2J\\x7f\\tFORGED"),
    ],
    ids=["lf", "crlf", "cr", "u2028-u2029", "nel", "vt-ff-fs-gs-rs", "esc-del-tab"],
)
def test_a_text_request_line_escapes_control_characters(client, bare_root, path, shown):
    stream = text_log(bare_root)
    client.get(
        path,
        environ_overrides={
            "HTTP_USER_AGENT": "ua\r\n" + FORGED,
            "HTTP_X_REQUEST_ID": "id\n" + FORGED,
        },
    )
    output = stream.getvalue()
    assert output.count("\n") == 1 and output.endswith(" 404\n"), output
    assert len(output.splitlines()) == 1
    assert f"auth_service.request: GET {shown}" in output


def test_a_literal_backslash_n_and_a_newline_log_differently(client, bare_root):
    """Backslashes are escaped too: a path with a backslash and an n stays apart from a
    path with a newline, and each request is still one line."""
    stream = text_log(bare_root)
    client.get("/x%5Cny")
    client.get("/x%0Ay")
    output = stream.getvalue()
    assert output.count("\n") == 2, output
    literal, newline = output.splitlines()
    assert "GET /x\\\\ny 404" in literal
    assert "GET /x\\ny 404" in newline
    assert literal != newline


def test_a_text_traceback_stays_under_its_record(bare_root):
    stream = text_log(bare_root)
    try:
        raise ValueError("boom\n" + FORGED + "\u2028" + FORGED)
    except ValueError:
        logging.getLogger("auth_service.x").exception("failed for %s", "a\r\n" + FORGED)
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("ERROR auth_service.x: failed for a\\r\\n" + FORGED)
    assert rest and all(line.startswith("    ") for line in rest)
    assert "    " + FORGED + "\\u2028" + FORGED in rest
    assert isinstance(logging.getLogger().handlers[0].formatter, TextFormatter)


def test_json_logs_by_default_text_in_development():
    assert load_config(TestingConfig)["LOG_JSON"] is True
    assert DevelopmentConfig.LOG_JSON is False


def test_without_its_own_request_line_the_app_still_tags_the_response(
    make_app, auth, alice_headers, request_lines
):
    """LOG_REQUESTS=false (under gunicorn.conf.py): gunicorn's access line is the request
    line, and reads the user id the app leaves in the WSGI environ."""

    class Quiet(TestingConfig):
        LOG_REQUESTS = False

    app = make_app(Quiet)
    environs = []
    inner = app.wsgi_app

    def server(environ, start_response):  # what gunicorn's access logger is handed
        environs.append(environ)
        return inner(environ, start_response)

    app.wsgi_app = server
    client = app.test_client()
    before = request_lines()  # the signup and login of the alice_headers fixture
    me = client.get("/auth/me", headers=alice_headers | {REQUEST_ID_HEADER: "trace-7"})
    anonymous = client.get("/healthz")

    assert request_lines() == before
    assert me.headers[REQUEST_ID_HEADER] == "trace-7"
    assert GENERATED_ID.fullmatch(anonymous.headers[REQUEST_ID_HEADER])
    assert [environ[USER_ID_ENVIRON_KEY] for environ in environs] == [me.json["id"], None]


def test_the_development_server_does_not_log_each_request_a_second_time(app, caplog):
    """flask run (werkzeug's server) writes a line per request of its own; the app's
    line has more, so werkzeug's is dropped and its other lines kept."""
    import threading
    import urllib.request

    from werkzeug.serving import make_server

    caplog.set_level(logging.INFO)
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz") as answer:
            assert answer.status == 200
    finally:
        server.shutdown()
        thread.join()
    lines = [r for r in caplog.records if r.name in ("werkzeug", "auth_service.request")]
    assert [r.name for r in lines] == ["auth_service.request"]
    logging.getLogger("werkzeug").info(" * Running on http://127.0.0.1:8000")
    assert caplog.records[-1].getMessage().endswith("Running on http://127.0.0.1:8000")
