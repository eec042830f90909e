"""auth_service against the floor of its own stack: ``make bench`` (``make bench SOAK=1``).

Starts, on this machine's PostgreSQL (database ``bench``, dropped and re-created), the
app under gunicorn with gunicorn.conf.py and the production config (random secrets,
argon2id at the production parameters) next to bench/floor_app.py served the same way,
then drives both with wrk on 127.0.0.1 in interleaved rounds (medians reported):

  GET /auth/me          vs  floor: PyJWT verifies the token, one primary-key SELECT on
                            users, JSON answer
  GET /.well-known/jwks.json vs floor: the same keys as static JSON
  POST /auth/refresh    vs  floor: PyJWT verifies the refresh token, UPDATE + INSERT in
                            one transaction, a new pair signed (bench/pairs.py)
  POST /auth/login      vs  floor: cores / time of one argon2id hash and one pair signed
                            (and, beside it, a login that only verifies the hash and signs
                            a pair: floor_app POST /login)
  mixed (88% me, 10% refresh, 2% login)
  GET /auth/me while logins run at full speed (p99 against /auth/me alone)

Rate limits are switched off (RATELIMIT_ENABLED=false) for the benchmark only: a
thousand logins a second from one address is exactly what they exist to refuse.
Worker recycling is off too (GUNICORN_MAX_REQUESTS=0) so RSS shows real growth.

Settings: bench/settings.py (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_ONLY,
SOAK=1 for the mixed workload over SOAK_SECONDS with worker RSS sampled, ...). Writes
bench/results/latest.md and .png (BENCH_OUTPUT names them otherwise; soak: soak.md and
soak.png). GUNICORN_* and WEB_CONCURRENCY pass through to both servers, e.g.
GUNICORN_WORKER_CLASS=sync.
"""

from __future__ import annotations

import base64
import contextlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.pairs import pair_seconds
from bench.report import (
    chart,
    load_average,
    machine,
    report,
    soak_chart,
    soak_report,
)
from bench.settings import DEFAULT_FLOOR_APP, RESULTS, ROOT, WORKLOADS, Settings

VENV_BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "wrk" / "auth.lua"
PASSWORD = "bench horse battery staple"
TICK = os.sysconf("SC_CLK_TCK")
# The workloads warmed up before the rounds (those of BENCH_ONLY among them).
WARMED_UP = (
    "floor_select",
    "floor_verify",
    "me",
    "floor_jwks",
    "jwks",
    "floor_write",
    "refresh",
    "floor_login",
    "login",
)


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn -c gunicorn.conf.py APP in its own process group; ``stop`` kills the group.
    ``cwd``: the checkout it serves (bench/ab.py's baseline), this one by default."""

    def __init__(self, app: str, env: dict, log: Path, cwd: Path = ROOT):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", app],
                cwd=cwd,
                env={**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        """Wait until GET ``path`` answers 2xx; raise with the log tail if it never does."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(Exception):
                if requests.get(self.url + path, timeout=2).ok:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.url} not ready; log tail:\n{self.log.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """Process ids of the gunicorn workers (the arbiter's children)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def worker_rss_mib(self) -> list[float]:
        """Resident memory of each worker, in MiB."""
        sizes = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                sizes.append(int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024)
        return sizes

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


# --- database and data ----------------------------------------------------------------


def recreate_database(url: str) -> None:
    """Drop and create the bench database (only that one) through the maintenance db."""
    import psycopg2

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name in (
        "postgres",
        "template0",
        "template1",
    ):
        raise SystemExit(f"refusing to recreate database {name!r}")
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {name}")
    finally:
        admin.close()


def analyze(url: str) -> None:
    """ANALYZE the bench database, as autovacuum keeps a production database analyzed.

    The tables start empty and fill at hundreds of rows a second, faster than autovacuum
    (a minute between its rounds) re-reads them: with the statistics of an empty table
    PostgreSQL may find a refresh token through its account's index and filter by jti,
    a cost that grows with every rotation of the run instead of one primary-key probe.
    """
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    finally:
        connection.close()


class Data:
    """Bench users and their tokens, made through the app's own code (in this process)."""

    def __init__(self, env: dict, users: int):
        os.environ.update(env)
        from auth_service import create_app
        from auth_service.extensions import db
        from auth_service.persistence.models import User
        from auth_service.security.passwords import hash_password

        self.app = create_app()
        with self.app.app_context():
            password_hash = hash_password(PASSWORD)  # one hash, shared: setup stays fast
            db.session.add_all(
                User(
                    email=f"bench{i}@example.com",
                    username=f"bench{i}",
                    full_name=f"Bench {i}",
                    password_hash=password_hash,
                    email_verified=datetime.now(UTC),
                )
                for i in range(users)
            )
            db.session.commit()
            self.users = db.session.execute(db.select(User.id, User.email).order_by(User.id)).all()
            floor = [f"({i})" for i in range(1, users + 1)]
            db.session.execute(
                db.text(
                    "CREATE TABLE bench_floor (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, "
                    "touched_at timestamptz)"
                )
            )
            db.session.execute(
                db.text(
                    "CREATE TABLE bench_floor_log (jti varchar(36) PRIMARY KEY, floor_id int "
                    "NOT NULL, created_at timestamptz NOT NULL)"
                )
            )
            db.session.execute(db.text(f"INSERT INTO bench_floor (id) VALUES {','.join(floor)}"))
            db.session.commit()

    def token_file(self, path: Path) -> Path:
        """One line per user: id, access token, the refresh token of a new family, email."""
        from auth_service.extensions import db
        from auth_service.persistence.models import User
        from auth_service.services import sessions

        lines = []
        with self.app.test_request_context(headers={"User-Agent": "wrk"}):
            for user_id, email in self.users:
                pair = sessions.start_session(db.session.get(User, user_id), ["pwd"])
                lines.append(f"{user_id} {pair.access_token} {pair.refresh_token} {email}")
            db.session.commit()  # services never commit: the caller does, as a CLI command does
            db.session.remove()
        path.write_text("\n".join(lines) + "\n")
        return path


def production_hasher(reference: bool = False):
    """The app's hasher at the production parameters (argon2-cffi's own with ``reference``)."""
    import argon2

    from auth_service.security.passwords import PasswordHasher
    from config import Config

    return (argon2.PasswordHasher if reference else PasswordHasher)(
        time_cost=Config.ARGON2_TIME_COST,
        memory_cost=Config.ARGON2_MEMORY_COST,
        parallelism=Config.ARGON2_PARALLELISM,
        type=argon2.Type.ID,
    )


def time_one_hash(compute, count: int = 8) -> float:
    """Median time of ``compute()``, one hash, alone on the machine: after one untimed
    hash, since the first after a pause maps its memory cold and takes longer."""
    compute()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        compute()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def hashes_per_second(
    compute, workers: int, seconds: float, processes: bool = False, threads: int = 1, slots: int = 0
) -> float:
    """Hashes/s of ``workers`` threads (argon2 releases the GIL) calling ``compute`` for
    ``seconds``; with ``processes``, of ``workers`` forked processes of ``threads`` threads
    each. ``slots``: at most that many hashes at once per process, as ARGON2_CONCURRENCY
    caps them (0: no cap)."""
    fork = multiprocessing.get_context("fork")
    counts = fork.Queue() if processes else []
    record = counts.put if processes else counts.append

    def work(threads: int) -> None:
        gate = threading.BoundedSemaphore(slots) if slots else contextlib.nullcontext()
        done, deadline = [], time.monotonic() + seconds

        def hash_until_deadline() -> None:
            count = 0
            while time.monotonic() < deadline:
                with gate:
                    compute()
                count += 1
            done.append(count)

        pool = [threading.Thread(target=hash_until_deadline) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        record(sum(done))

    runners = (
        [fork.Process(target=work, args=(threads,)) for _ in range(workers)]
        if processes
        else [threading.Thread(target=work, args=(workers,))]
    )
    started = time.monotonic()
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    elapsed = time.monotonic() - started
    return sum(counts.get() if processes else counts.pop() for _ in runners) / elapsed


def login_floor_seconds(algorithm: str) -> float:
    """What one login must spend at least: one argon2id hash and one pair signed."""
    return argon2_hash_seconds() + pair_seconds(algorithm)


def argon2_hash_seconds(count: int = 8, reference: bool = False) -> float:
    """Median time of one argon2id hash at the production parameters, on this machine now:
    as the app computes it (libsodium), or by argon2-cffi's reference code."""
    hasher = production_hasher(reference)
    return time_one_hash(lambda: hasher.hash(PASSWORD), count)


def process_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (those still running)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def settle(servers, timeout: float = 10, window: float = 0.2) -> None:
    """Wait (at most ``timeout``) until the servers' workers are idle. When wrk stops, the
    requests it had sent still run, and whatever is measured next would share the machine
    with them (bench/results/2026-12-06-performance-investigations.md)."""
    pids = [pid for server in servers.values() for pid in server.worker_pids()]
    deadline = time.monotonic() + timeout
    used = process_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(window)
        used, before = process_seconds(pids), used
        if used - before < 2 / TICK:  # a worker's idle wake-ups stay below 2 clock ticks
            return


def argon2_hashes_per_second(seconds: float, cores: int) -> float:
    """Hashes/s of one hashing thread per core for ``seconds``: cores / hash time as the
    machine grants it right now, other people's load included."""
    hasher = production_hasher()
    return hashes_per_second(lambda: hasher.hash(PASSWORD), cores, seconds)


# --- wrk ------------------------------------------------------------------------------


def parse_wrk(output: str) -> dict:
    """req/s, p50 and p99 (ms) and the auth.lua counters from wrk's output."""

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)\b", output).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    extra = dict(re.findall(r"(\w+)=(\d+)", re.search(r"BENCH (.*)", output).group(1)))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        **{k: int(v) for k, v in extra.items()},
    }


def wrk(
    url: str, mode: str, tokens: Path, seconds: int, connections: int, close: bool
) -> subprocess.Popen:
    """Start wrk with bench/wrk/auth.lua in ``mode`` against ``url``, in its own session;
    ``close``: a new connection per request."""
    env = {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_TOKENS": str(tokens),
        "BENCH_PASSWORD": PASSWORD,
        "BENCH_CLOSE": "1" if close else "0",
    }
    return subprocess.Popen(
        [
            "wrk",
            f"-t{connections}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, seconds: int) -> dict:
    """Wait for a wrk started by ``wrk`` and parse its result; raise if it failed."""
    try:
        out, _ = process.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    if process.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    return parse_wrk(out)


# --- the run --------------------------------------------------------------------------


def environment(url: str, algorithm: str = "ES256") -> dict:
    """Environment of both servers: production config, fresh secrets, rate limits off,
    tokens signed with ``algorithm`` (the floor verifies them with the same issuer)."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        or k.startswith(("GUNICORN_", "WEB_CONCURRENCY"))
    }
    return {
        **keep,
        "PATH": f"{VENV_BIN}{os.pathsep}{keep.get('PATH', '/usr/bin:/bin')}",
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DATABASE_URL": url,
        "FLOOR_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg2://", 1),
        "FLOOR_LOGIN_PASSWORD": PASSWORD,
        "RATELIMIT_ENABLED": "false",  # benchmark only, see the docstring
        "GUNICORN_MAX_REQUESTS": "0",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        "MAIL_BACKEND": "console",
        "JWT_ALGORITHM": algorithm,
        "JWT_ISSUER": "https://auth.bench.test",
    }


def run_workload(settings: Settings, name, servers, data, workdir, seconds) -> dict:
    """One wrk run of workload ``name`` with fresh tokens; the result with RSS and load."""
    server_name, mode, _ = WORKLOADS[name]
    server = servers[server_name]
    tokens = data.token_file(workdir / f"tokens-{name}.txt")
    settle(servers)
    if name == "me_under_login":
        logins = wrk(
            server.url, "login", tokens, seconds + 2, settings.login_connections, settings.close
        )
        time.sleep(1)  # logins at full speed before /auth/me is measured
        result = finish(
            wrk(server.url, mode, tokens, seconds, settings.connections, settings.close), seconds
        )
        result["login_rps"] = finish(logins, seconds + 2)["rps"]
    else:
        result = finish(
            wrk(server.url, mode, tokens, seconds, settings.connections, settings.close), seconds
        )
    result["rss"] = server.worker_rss_mib()
    result["load"] = load_average()
    return result


def soak(settings: Settings, servers, data, workdir) -> None:
    """The mixed workload for soak_seconds, worker RSS sampled; writes soak.md and soak.png."""
    app = servers["app"]
    tokens = data.token_file(workdir / "tokens-soak.txt")
    samples = [(0.0, app.worker_rss_mib())]
    process = wrk(
        app.url, "mixed", tokens, settings.soak_seconds, settings.connections, settings.close
    )
    started = time.monotonic()
    while process.poll() is None:
        time.sleep(settings.soak_interval)
        samples.append((time.monotonic() - started, app.worker_rss_mib()))
    result = finish(process, settings.soak_seconds)
    text = soak_report(samples, result, settings)
    (RESULTS / "soak.md").write_text(text)
    print(text, end="")
    soak_chart(samples, RESULTS / "soak.png", settings)


def start(settings: Settings, env: dict, workdir: Path, servers: dict) -> Data:
    """Re-create and fill the bench database, then start the app and the floor app with
    ``env`` (``environment``) into ``servers`` (the caller stops them, whatever happens)."""
    recreate_database(settings.database_url)
    subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = Data(env, settings.connections)
    servers["app"] = Gunicorn("wsgi:app", env, workdir / "app.log")
    servers["floor"] = Gunicorn(settings.floor_app, env, workdir / "floor.log")
    servers["app"].wait_ready("/readyz")
    servers["floor"].wait_ready("/healthz")
    return data


def main(settings: Settings) -> None:
    """Set up the database and both servers, run the rounds, write the results."""
    workdir = Path(tempfile.mkdtemp(prefix="auth_service-bench-"))
    RESULTS.mkdir(exist_ok=True)
    servers: dict[str, Gunicorn] = {}
    meta = {
        "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "machine": machine(settings.cores),
        "load_start": load_average(),
    }
    output = settings.output
    env = environment(settings.database_url, settings.algorithm)
    try:
        data = start(settings, env, workdir, servers)
        config = subprocess.run(
            [
                str(VENV_BIN / "python"),
                "-c",
                "import runpy; c = runpy.run_path('gunicorn.conf.py');"
                "print(c['worker_class'], c['workers'], c['threads'])",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        meta["server"] = f"worker_class={config[0]} workers={config[1]} threads={config[2]}"
        meta["algorithm"] = settings.algorithm
        if settings.floor_app != DEFAULT_FLOOR_APP:
            meta["server"] += f"; the floor app is {settings.floor_app}, not {DEFAULT_FLOOR_APP}"
        from config import Config

        meta["argon2"] = (
            Config.ARGON2_TIME_COST,
            Config.ARGON2_MEMORY_COST,
            Config.ARGON2_PARALLELISM,
        )
        meta["argon2_reference_s"] = argon2_hash_seconds(reference=True)
        meta["pair_s"] = pair_seconds(settings.algorithm)
        for name in WARMED_UP:
            if settings.warmup and name in settings.only:
                run_workload(settings, name, servers, data, workdir, settings.warmup)
        analyze(settings.database_url)
        if settings.soak:
            soak(settings, servers, data, workdir)
            return
        results: dict[str, list[dict]] = {}
        hash_times = []
        for round_number in range(settings.rounds):
            for name in settings.only:
                if name == "login":
                    settle(servers)
                    hash_times.append(login_floor_seconds(settings.algorithm))
                    results.setdefault("hash_floor", []).append(
                        {
                            "rps": argon2_hashes_per_second(
                                min(settings.seconds, 5), settings.cores
                            ),
                            "load": load_average(),
                        }
                    )
                result = run_workload(settings, name, servers, data, workdir, settings.seconds)
                results.setdefault(name, []).append(result)
                print(
                    f"round {round_number + 1} {name:15} {result['rps']:8.1f} req/s "
                    f"p50 {result['p50']:7.1f} p99 {result['p99']:7.1f} ms "
                    f"errors {result.get('errors', 0)} load {result['load']}",
                    flush=True,
                )
        if not hash_times:
            settle(servers)
            hash_times.append(login_floor_seconds(settings.algorithm))
        meta["load_end"] = load_average()
        text = report(results, hash_times, meta, settings)
        (RESULTS / f"{output}.md").write_text(text)
        if output == "latest" or settings.chart:
            chart(results, RESULTS / f"{output}.png", hash_times, settings)
        raw = RESULTS / "raw" / f"{output}.json"  # git-ignored
        raw.parent.mkdir(exist_ok=True)
        raw.write_text(json.dumps({"results": results, "hash_times": hash_times}, indent=1))
        print(text)
        print(f"raw results: {raw}")
    finally:
        for server in servers.values():
            server.stop()
        # Token files and server logs: the logs are kept only when something failed.
        for tokens in workdir.glob("tokens-*.txt"):
            tokens.unlink()
        if sys.exc_info()[0] is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"server logs: {workdir}", file=sys.stderr)
