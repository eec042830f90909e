"""gunicorn settings for auth_service: ``gunicorn -c gunicorn.conf.py`` (serves wsgi:app).

Every setting comes from the environment, then the checkout's ``.env`` (as config.py
reads it: real environment variables win), with defaults sized from the machine's
cores; docs/deployment.md lists the variables. This file does not import
auth_service or config: it is read by the master before the app exists, and again on
every HUP.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from dotenv import load_dotenv
from gunicorn import glogging

# The same .env the app reads (config.py), so that gunicorn and the app agree on PORT,
# TRUSTED_PROXIES and LOG_LEVEL; the Docker image has none (.dockerignore).
load_dotenv(Path(__file__).resolve().with_name(".env"), override=False)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw in ("1", "true", "yes", "on")


def _cores() -> int:
    """Cores this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


CORES = _cores()

wsgi_app = "wsgi:app"
proc_name = "auth_service"

# 127.0.0.1 unless told otherwise: on a VM nginx is on the same host, and an app port
# open to the network would let clients bypass nginx (and forge X-Forwarded-For, which
# TRUSTED_PROXIES=1 believes from the peer). The Docker image sets 0.0.0.0:8000.
bind = [b.strip() for b in os.environ.get("GUNICORN_BIND", "").split(",") if b.strip()] or [
    f"127.0.0.1:{_int('PORT', 8000)}"
]

# Threads overlap the database waits, and the hash releases the GIL (docs/adr/1201).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
# One process per core (at least two, so a recycled or crashed worker never leaves the
# instance without one), each with 4 threads.
workers = _int("WEB_CONCURRENCY", max(2, CORES))
threads = _int("GUNICORN_THREADS", 4)
# Password hashes at once per worker: the instance hashes on every core and no more
# (more at once than cores makes each one slower; ARGON2_CONCURRENCY in config.py).
os.environ.setdefault("ARGON2_CONCURRENCY", str(max(1, CORES // workers)))

# A worker whose main loop is silent this long is killed and replaced (with gthread a
# single stuck request does not trip it: every database call has its own timeout).
# nginx's proxy_read_timeout is longer, so nginx answers 502 rather than cutting first.
timeout = _int("GUNICORN_TIMEOUT", 30)
# SIGTERM / HUP: in-flight requests get this long to finish before the worker is killed.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Idle keep-alive for direct clients; nginx opens a new connection per request.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle a worker after this many requests (plus jitter, so they don't all restart at
# once): bounds the damage of a slow leak in any dependency. 0 turns it off.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = max_requests // 10
# Preloaded: the master imports the app once and forks the workers from it, so the
# read-only part (zxcvbn's dictionaries, the libraries) is shared copy-on-write.
# Nothing that must not be shared exists before the fork: the app opens
# its database and Redis connections lazily, in each worker. The cost: HUP (`systemctl
# reload`) re-reads this file and replaces the workers, but new *code* needs a restart
# (a new container, or `systemctl restart` one instance at a time behind nginx).
# GUNICORN_PRELOAD=false trades the memory back for code reloads on HUP.
preload_app = _bool("GUNICORN_PRELOAD", True)

# The heartbeat file lives in memory: on an overlay or network filesystem, the fchmod
# gunicorn does on it can block a worker for seconds.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn 25+ opens a control socket under $HOME by default: two instances on one host
# would fight over it, and a container's HOME may be read-only. Opt in with a path.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]

# Proxy headers. The app's ProxyFix (TRUSTED_PROXIES) is what rewrites the client IP,
# scheme and host; gunicorn is told the same thing so the two never disagree: with no
# trusted proxy it believes no header, behind one it believes only X-Forwarded-Proto
# (the one nginx sets; nginx blanks X-Forwarded-Ssl/-Protocol) and only from the
# addresses in FORWARDED_ALLOW_IPS (nginx's; "*" when only nginx can reach the port,
# as in docker-compose.yml).
_behind_proxy = _int("TRUSTED_PROXIES", 0) > 0
forwarded_allow_ips = (
    os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1") if _behind_proxy else ""
)
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"} if _behind_proxy else {}

# Prometheus metrics (METRICS_ENABLED): each worker counts into files of its own in one
# directory, and /metrics sums them (prometheus-client's multiprocess mode), so the
# answer is the instance's whichever worker serves the scrape. The variable must be set
# before the app imports prometheus_client: here, before the preloaded app exists. The
# default directory is this master's own (two instances on one host never share one).
if _bool("METRICS_ENABLED", False):
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        os.path.join(
            "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
            f"auth_service-metrics-{os.getpid()}",
        ),
    )
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)


def on_starting(server) -> None:
    """Empty the metrics directory: a previous run's counts must not add to this one's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        for entry in os.scandir(directory):
            if entry.name.endswith(".db"):
                os.unlink(entry.path)


def on_exit(server) -> None:
    """Remove the default metrics directory (one per master) with the master."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.path.basename(directory) == f"auth_service-metrics-{os.getpid()}":
        shutil.rmtree(directory, ignore_errors=True)


def child_exit(server, worker) -> None:
    """A worker is gone: its counts stay (counters only grow), its live gauges go."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


loglevel = os.environ.get("LOG_LEVEL", "info").lower()
accesslog = "-"  # stdout
errorlog = "-"  # stderr
# The access line below is the request line: it has every field of the app's own line
# (auth_service/observability/request_log.py), the app hands it the user id through the
# WSGI environ, and one line per request spares the app a log record on every request.
# LOG_REQUESTS=true brings the app's line back beside it.
os.environ.setdefault("LOG_REQUESTS", "false")
# Set by the app on every request (auth_service.observability.request_log.USER_ID_ENVIRON_KEY).
USER_ID_ENVIRON_KEY = "auth_service.user_id"


class JsonLogger(glogging.Logger):
    """gunicorn's own lines as JSON objects: the access log and its error log.

    Same shape as the app's lines (auth_service/observability/request_log.py); kept separate because
    this file must not import the app. The access line never holds the query string,
    the referrer or any request header but the user agent: that is where tokens travel.
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if getattr(handler, "_gunicorn", False):
                handler.setFormatter(_JsonErrorFormatter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = dict((k.lower(), v) for k, v in (resp.headers or []))
        entry = {
            "ts": _now(),
            "level": "INFO",
            "logger": "gunicorn.access",
            "method": environ.get("REQUEST_METHOD"),
            "path": (environ.get("PATH_INFO") or "")[:512],
            "status": int(status) if str(status).isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "request_id": headers.get("x-request-id"),
            "user_id": environ.get(USER_ID_ENVIRON_KEY),
            # ProxyFix rewrote REMOTE_ADDR in this same environ: the real client's address.
            "client_ip": environ.get("REMOTE_ADDR"),
            "user_agent": (environ.get("HTTP_USER_AGENT") or "")[:200] or None,
            "pid": os.getpid(),
        }
        try:
            self.access_log.info(json.dumps(entry, default=str))
        except Exception:  # a log line must never fail the request
            self.exception("cannot write the access log line")


class _JsonErrorFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _now(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


logger_class = JsonLogger
