"""The production stack on 127.0.0.1, from real binaries: what docker-compose.yml runs.

A private PostgreSQL cluster (initdb into a temporary directory: the machine's own
server is never touched), a private redis-server, two app instances started through
deploy/docker-entrypoint.sh (wait for the database, migrate, gunicorn with
gunicorn.conf.py) and nginx with deploy/nginx.conf rendered for loopback ports:
"plain" serves http the way docker-compose.yml does, "edge" adds deploy/nginx-tls.conf
(https with a throwaway certificate, plain http redirected) the way a real host does.

Every wait is bounded; every process is stopped (SIGTERM, then SIGKILL) by ``close``.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import redis
import requests
from requests.adapters import HTTPAdapter

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PLACEHOLDER = re.compile(r"\$\{(NGX_[A-Z0-9_]+)\}")
START_TIMEOUT = 30
STOP_TIMEOUT = 15
# Clients reach nginx from this loopback address, so that the address the app must log
# (the real client's) differs from nginx's own (127.0.0.1).
CLIENT_ADDRESS = "127.0.0.2"


class StackError(RuntimeError):
    """A component did not start or stop in time (its log tail is in the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.1, log: Path | None = None):
    """Call ``check`` until it returns a true value; StackError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - anything means "not yet"
            last_error = error
        time.sleep(interval)
    raise StackError(
        f"{what} not ready after {timeout}s (last error: {last_error!r})"
        + (f"\n--- {log} ---\n{tail(log)}" if log else "")
    )


def tail(path: Path, size: int = 6000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(no log)"
    return data[-size:].decode(errors="replace")


def render(template: Path, values: dict[str, str]) -> str:
    """Substitute the ${NGX_*} placeholders of an nginx template (nothing else)."""
    text = template.read_text()
    missing = sorted(set(PLACEHOLDER.findall(text)) - values.keys())
    if missing:
        raise StackError(f"{template.name}: no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else in Debian's /usr/lib/postgresql/<version>/bin (newest first)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def stop_process(
    process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> None:
    """Signal the process group, wait, then SIGKILL it; always reaps the process."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left of the group (workers that outlived their master) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)


def spawn(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """Start ``args`` in its own process group (so the whole tree can be stopped)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kwargs,
        )


def local_session(source_address: str | None = None, verify: str | bool = True) -> requests.Session:
    """A requests session for this machine only: no proxy or CA bundle from the environment
    (REQUESTS_CA_BUNDLE would replace the test certificate), optionally bound to a source address."""
    session = requests.Session()
    session.trust_env = False
    session.verify = verify
    if source_address:
        adapter = SourceAddressAdapter(source_address)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def get(url: str, verify: str | bool = True) -> requests.Response:
    with local_session(verify=verify) as session:
        return session.get(url, timeout=2, allow_redirects=False)


class SourceAddressAdapter(HTTPAdapter):
    """requests transport adapter that connects from a chosen local address."""

    def __init__(self, address: str = CLIENT_ADDRESS):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Postgres:
    """A throwaway cluster: initdb + pg_ctl, as the postgres user when we are root."""

    def __init__(self, workdir: Path):
        self.initdb, self.pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir=workdir))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chmod(workdir, 0o755)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/auth_service"

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> None:
        result = subprocess.run(
            [*self.as_user, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise StackError(
                f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}"
                f"\n--- {self.log} ---\n{tail(self.log)}"
            )

    def create(self) -> None:
        self._run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        self.start()
        with contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        ) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("CREATE DATABASE auth_service")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT),
            "start",
            timeout=START_TIMEOUT + 5,
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-m",
            mode,
            "-w",
            "-t",
            str(STOP_TIMEOUT),
            "stop",
            timeout=STOP_TIMEOUT + 5,
        )

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        if self.is_running():
            try:
                self.stop("immediate")
            except (StackError, subprocess.TimeoutExpired):
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Redis:
    """redis-server on a free port, nothing on disk."""

    def __init__(self, workdir: Path):
        self.binary = find_binary("redis-server")
        self.port = free_port()
        self.log = workdir / "redis.log"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.workdir = workdir

    def start(self) -> None:
        self.process = spawn(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            self.log,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            wait_until(client.ping, START_TIMEOUT, "redis-server", log=self.log)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def close(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class AppInstance:
    """One gunicorn instance (master + workers), started the way the container starts it."""

    def __init__(self, name: str, workdir: Path, environ: dict[str, str]):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"app-{name}.log"
        self.environ = {
            **environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            # In the workdir, so a master killed outright (test_resilience) leaves nothing.
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{name}"),
        }
        self.process: subprocess.Popen | None = None

    def start(self, run_migrations: bool) -> None:
        environ = {**self.environ, "RUN_MIGRATIONS": "true" if run_migrations else "false"}
        self.process = spawn(
            ["sh", str(ROOT / "deploy" / "docker-entrypoint.sh")], self.log, cwd=ROOT, env=environ
        )
        wait_until(self._ready, START_TIMEOUT + 30, f"app instance {self.name}", log=self.log)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise StackError(
                f"app instance {self.name} exited with {self.process.returncode}:\n{tail(self.log)}"
            )
        return get(self.url + "/readyz").status_code == 200

    @property
    def master_pid(self) -> int:
        """gunicorn's master: the entrypoint exec'd into it, so it is the process we started."""
        return self.process.pid

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.master_pid}/task/{self.master_pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except OSError:
            return set()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig)


class Nginx:
    """nginx with deploy/nginx.conf (and, for "edge", deploy/nginx-tls.conf) rendered."""

    def __init__(self, name: str, workdir: Path, apps: list[AppInstance], tls: tuple | None):
        self.binary = find_binary("nginx")
        self.name = name
        self.prefix = workdir / f"nginx-{name}"
        self.prefix.mkdir()
        os.chmod(self.prefix, 0o755)  # workers (nobody, when we are root) create temp dirs here
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.error_log = self.prefix / "error.log"
        self.access_log = self.prefix / "access.log"
        tls_dir = self.prefix / "tls.d"
        tls_dir.mkdir()
        values = {
            "NGX_LISTEN": f"127.0.0.1:{self.port}",
            "NGX_SERVER_NAME": "localhost",
            "NGX_APP_1": f"127.0.0.1:{apps[0].port}",
            "NGX_APP_2": f"127.0.0.1:{apps[1].port}",
            "NGX_TLS_DIR": str(tls_dir),
            "NGX_ACCESS_LOG": str(self.access_log),
        }
        self.https_url = None
        if tls is not None:
            cert, key = tls
            tls_port = free_port()
            self.https_url = f"https://127.0.0.1:{tls_port}"
            (tls_dir / "tls.conf").write_text(
                render(
                    ROOT / "deploy" / "nginx-tls.conf",
                    {
                        "NGX_TLS_LISTEN": f"127.0.0.1:{tls_port}",
                        "NGX_TLS_CERT": str(cert),
                        "NGX_TLS_KEY": str(key),
                        "NGX_HTTPS_ORIGIN": self.https_url,
                    },
                )
            )
        (self.prefix / "auth_service.conf").write_text(
            render(ROOT / "deploy" / "nginx.conf", values)
        )
        # The main context is the test's (pid, logs and temp paths in the prefix); the
        # http{} content is deploy/nginx.conf itself.
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {self.prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            f"{user}worker_processes 1;\npid {self.prefix / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\nevents {{ worker_connections 512; }}\n"
            f"http {{\n{temp}\n    include {self.prefix / 'auth_service.conf'};\n}}\n"
        )
        self.process: subprocess.Popen | None = None

    def _args(self, *extra: str) -> list[str]:
        return [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(self.conf),
            "-e",
            str(self.error_log),
            *extra,
        ]

    def start(self) -> None:
        check = subprocess.run(
            self._args("-t"), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
        if check.returncode != 0:
            raise StackError(f"nginx -t ({self.name}) failed:\n{check.stderr}")
        self.process = spawn(self._args("-g", "daemon off;"), self.prefix / "stdout.log")
        wait_until(
            lambda: get(self.url + "/healthz").status_code in (200, 308),
            START_TIMEOUT,
            f"nginx {self.name}",
            log=self.error_log,
        )

    def close(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGQUIT)  # graceful shutdown


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), valid one day."""
    cert, key = workdir / "tls-cert.pem", workdir / "tls-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    return cert, key


def app_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """What docker-compose.yml gives the app, plus what the tests need pinned."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    }
    return {
        **keep,
        "PATH": f"{VENV_BIN}{os.pathsep}{keep.get('PATH', '/usr/bin:/bin')}",
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRUSTED_PROXIES": "1",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        "DB_WAIT_TIMEOUT": "30",
        # Every refusal of a spent token is reuse (no grace window), so the cross-instance
        # test needs no sleeping; the tests make many logins and signups from one address.
        "REFRESH_REUSE_GRACE_SECONDS": "0",
        "RATELIMIT_LOGIN_PER_IP": "1000 per minute",
        "RATELIMIT_SIGNUP": "1000 per minute",
        "RATELIMIT_REFRESH": "1000 per minute",
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP": "5 per minute",
        "RATELIMIT_KEY_PREFIX": "it-" + secrets.token_hex(4),
        # Pinned so a developer's .env cannot change what is tested.
        "JWT_COOKIE_SECURE": "true",
        "MAX_CONTENT_LENGTH": "65536",
        "LOGIN_REFRESH_TRANSPORT": "both",
        # /metrics on each instance (tests/integration/test_metrics.py), never via nginx.
        "METRICS_ENABLED": "true",
    }


class Stack:
    """Everything above, started in dependency order and closed in reverse."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.postgres = Postgres(workdir)
        self.redis = Redis(workdir)
        self.apps: list[AppInstance] = []
        self.plain: Nginx | None = None
        self.edge: Nginx | None = None
        self.cert: Path | None = None

    def start(self) -> None:
        self.postgres.create()
        self.redis.start()
        environ = app_environment(self.postgres.url, self.redis.url)
        self.apps = [
            AppInstance("a", self.workdir, environ),
            AppInstance("b", self.workdir, environ),
        ]
        self.apps[0].start(run_migrations=True)
        self.apps[1].start(run_migrations=False)
        self.cert, key = make_certificate(self.workdir)
        self.plain = Nginx("plain", self.workdir, self.apps, tls=None)
        self.edge = Nginx("edge", self.workdir, self.apps, tls=(self.cert, key))
        self.plain.start()
        self.edge.start()

    def wait_balanced(self, timeout: float = 20) -> None:
        """Until each nginx sends requests to both instances again (after one was down,
        nginx leaves it out for fail_timeout, 5 s)."""
        for nginx in (self.plain, self.edge):
            wanted = {f"127.0.0.1:{app.port}" for app in self.apps}
            seen: set[str] = set()

            def both_seen() -> bool:
                # The edge redirects plain http: only its https side reaches the upstream.
                get((nginx.https_url or nginx.url) + "/healthz", verify=str(self.cert))
                time.sleep(0.05)  # nginx writes its log line as the response goes out
                for line in nginx.access_log.read_text().splitlines()[-4:]:
                    seen.update(json.loads(line)["upstream"].split(", "))
                return wanted <= seen

            wait_until(
                both_seen,
                timeout,
                f"nginx {nginx.name} balancing over both instances",
                interval=0.2,
                log=nginx.error_log,
            )

    def logs(self) -> str:
        """Every component's log, for a failure report."""
        parts = []
        for path in sorted(self.workdir.rglob("*.log")):
            parts.append(f"--- {path.relative_to(self.workdir)} ---\n{tail(path, 4000)}")
        return "\n".join(parts)

    def close(self) -> None:
        for component in (self.edge, self.plain, *reversed(self.apps), self.redis, self.postgres):
            if component is not None:
                with contextlib.suppress(Exception):
                    component.close()
