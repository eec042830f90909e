"""Structured logs: one JSON line per request, and the X-Request-ID that ties lines together.

Every request gets an id: the caller's ``X-Request-ID`` (nginx sets one) when it is
visible ASCII of at most 128 characters, a fresh one otherwise. It is echoed in the
response and stamped on every log line written while the request runs, so nginx's,
gunicorn's and the app's lines about one request can be joined.

The request line carries method, path, status, duration, request id, user id (once a
token has been verified, or a login started a session) and the client IP, which is ``request.remote_addr``: the
socket peer, or what ProxyFix took from a trusted proxy (never a raw
X-Forwarded-For). Query strings, headers and bodies are never logged: they are where
tokens, passwords and cookies travel.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request
from flask_jwt_extended import get_jwt

from auth_service.services import audit, sessions

REQUEST_ID_HEADER = "X-Request-ID"
# The same header as the WSGI server hands it over (PEP 3333): read from the environ,
# it costs no EnvironHeaders lookup.
REQUEST_ID_ENVIRON_KEY = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
# Where the user id of a request waits for gunicorn's access line (gunicorn.conf.py).
USER_ID_ENVIRON_KEY = "auth_service.user_id"
# Visible ASCII, bounded: room for a UUID, a W3C trace id or nginx's $request_id, but
# no spaces, control characters or megabytes that could forge or flood log lines.
VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
MAX_LOGGED_PATH = 512
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger("auth_service.request")

# C0 and C1 controls, DEL and the Unicode line and paragraph separators: what a terminal,
# `less` or a line-splitting log shipper could take for the end of a line or a command.
# The backslash too, or a client's own "\\n" would read like an escaped newline.
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL_ESCAPES.update(
    {
        ord("\\"): "\\\\",
        ord("\t"): "\\t",
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        0x2028: "\\u2028",
        0x2029: "\\u2029",
    }
)


def escape_controls(text: str) -> str:
    """``text`` on one line: every control character written as its escape (\\n, \\x1b),
    and every backslash doubled, so an escape always means a control character."""
    return text.translate(_CONTROL_ESCAPES)


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


# json.dumps(entry, default=str, ensure_ascii=False) would build this encoder per line.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT with every control character escaped: one record, one line.

    A client chooses the path ("/%0a..." decodes to a newline) and much of what other
    lines quote; unescaped, it could write a line that looks like another record. A
    traceback keeps its lines, each indented, so only a record starts a line.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        lines = [escape_controls(self.formatMessage(record))]
        # Formatted here, never from record.exc_text: another handler may have cached it raw.
        if record.exc_info:
            lines.append(_indented(self.formatException(record.exc_info)))
        elif record.exc_text:
            lines.append(_indented(record.exc_text))
        if record.stack_info:
            lines.append(_indented(self.formatStack(record.stack_info)))
        return "\n".join(lines)


def _indented(text: str) -> str:
    """Each line of a traceback escaped and indented under the record it belongs to."""
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


class RequestIdFilter(logging.Filter):
    """Stamp the current request's id on every record written during a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = request_id()
        return True


# The format of the line werkzeug's development server (flask run) writes per request.
_DEV_SERVER_REQUEST_LINE = '"%s" %s %s'


class DevServerRequestLineFilter(logging.Filter):
    """Drop the development server's own line per request: the app writes a fuller one
    (LOG_REQUESTS), and two lines per request halve what a terminal shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.INFO
            and isinstance(record.msg, str)
            and record.msg.rstrip("\n").endswith(_DEV_SERVER_REQUEST_LINE)
        )


def configure_logging(json_lines: bool) -> None:
    """Log to stderr, one JSON object per line (``json_lines``) or plain text.

    Like ``logging.basicConfig``, a root logger that already has someone else's
    handlers (pytest, a program embedding the app) is left alone; running this
    again (a second app) only changes the format of our own handler.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "auth_service_handler", False)]
    if not ours and root.handlers:
        return
    handler = ours[0] if ours else logging.StreamHandler()
    if not ours:
        handler.auth_service_handler = True
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())


def request_id() -> str:
    """This request's id: the incoming X-Request-ID when it is acceptable, else a new one."""
    if "request_id" not in g:
        incoming = request.environ.get(REQUEST_ID_ENVIRON_KEY, "")
        # 128 random bits as 32 hex digits, like uuid4().hex without the UUID object.
        g.request_id = incoming if VALID_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(16)
    return g.request_id


def _user_id() -> int | None:
    """The ``sub`` of a token this request verified, or the account of the session it
    started (a login)."""
    try:
        sub = get_jwt().get("sub")
    except RuntimeError:  # flask-jwt-extended: no token was verified in this request
        return sessions.session_started_for()
    return int(sub) if isinstance(sub, str) and sub.isascii() and sub.isdigit() else None


def start_timer() -> None:
    """before_request: note the start time and settle the request id."""
    g.request_started = time.perf_counter()
    request_id()


def tag_response(response: Response) -> Response:
    """after_request: echo the request id, and hand the user id to the server's access line.

    gunicorn.conf.py's access line reads ``USER_ID_ENVIRON_KEY`` from the WSGI environ,
    so it can be the one request line (LOG_REQUESTS=false).
    """
    response.headers[REQUEST_ID_HEADER] = request_id()
    request.environ[USER_ID_ENVIRON_KEY] = _user_id()
    return response


def log_request(response: Response) -> Response:
    """after_request: echo the request id and write the request line."""
    tag_response(response)
    rid = request_id()
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    path = request.path[:MAX_LOGGED_PATH]
    log.info(
        "%s %s %s",
        request.method,
        path,
        response.status_code,
        extra={
            "method": request.method,
            "path": path,
            "status": response.status_code,
            "duration_ms": duration_ms,
            "request_id": rid,
            "user_id": request.environ[USER_ID_ENVIRON_KEY],  # what tag_response found
            "client_ip": request.remote_addr,
        },
    )
    return response


def init_app(app: Flask) -> None:
    """Register the hooks; call before the other before_request hooks so the timer runs first.

    With LOG_REQUESTS=false (gunicorn.conf.py sets it: its access line carries every
    field of ours) the app writes no request line of its own, only tags the response.
    Audit events carry the same request id (auth_service.services.audit).
    """
    app.extensions[audit.REQUEST_ID_SOURCE] = request_id
    if app.config["LOG_REQUESTS"]:
        app.before_request(start_timer)
        app.after_request(log_request)
        dev_server = logging.getLogger("werkzeug")
        if not any(isinstance(f, DevServerRequestLineFilter) for f in dev_server.filters):
            dev_server.addFilter(DevServerRequestLineFilter())
    else:
        app.after_request(tag_response)
