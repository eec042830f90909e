"""auth_service against the floor of its own stack: ``make bench`` (``make bench SOAK=1``).

Starts, on this machine's PostgreSQL (database ``bench``, dropped and re-created), the
app under gunicorn with gunicorn.conf.py and the production config (random secrets,
argon2id at the production parameters) next to bench/floor_app.py served the same way,
then drives both with wrk on 127.0.0.1 in interleaved rounds (medians reported):

  GET /auth/me          vs  floor: one primary-key SELECT on users, JSON answer
  POST /auth/refresh    vs  floor: UPDATE + INSERT in one transaction
  POST /auth/login      vs  floor: cores / time of one argon2id hash
  mixed (88% me, 10% refresh, 2% login)
  GET /auth/me while logins run at full speed (p99 against /auth/me alone)

Rate limits are switched off (RATELIMIT_ENABLED=false) for the benchmark only: a
thousand logins a second from one address is exactly what they exist to refuse.
Worker recycling is off too (GUNICORN_MAX_REQUESTS=0) so RSS shows real growth.

Settings (environment): BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_CONNECTIONS (16),
BENCH_WARMUP (3 s), BENCH_CLOSE (1: a new connection per request, as nginx sends them),
BENCH_DATABASE_URL (postgresql://postgres@127.0.0.1:5432/bench), BENCH_ONLY (comma
separated workload names), SOAK=1 with SOAK_SECONDS (300): the mixed workload for that
long, worker RSS sampled every SOAK_INTERVAL (10) seconds. Writes bench/results/latest.md
and .png (BENCH_OUTPUT names them otherwise; soak: soak.md and soak.png). GUNICORN_* and
WEB_CONCURRENCY pass through to both servers, e.g. GUNICORN_WORKER_CLASS=sync.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
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
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_BIN = Path(sys.executable).parent
LUA = BENCH / "wrk" / "auth.lua"
PASSWORD = "bench horse battery staple"

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
CLOSE = os.environ.get("BENCH_CLOSE", "1") == "1"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench")
SOAK = os.environ.get("SOAK", "") not in ("", "0")
SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "300"))
SOAK_INTERVAL = int(os.environ.get("SOAK_INTERVAL", "10"))
CORES = len(os.sched_getaffinity(0))
# Name of the result files in bench/results (another one for a one-off comparison).
OUTPUT = os.environ.get("BENCH_OUTPUT", "latest")

# name -> (server, wrk mode, label)
WORKLOADS = {
    "floor_select": ("floor", "floor_select", "floor: SELECT by primary key"),
    "me": ("app", "me", "GET /auth/me"),
    "floor_write": ("floor", "floor_write", "floor: UPDATE + INSERT"),
    "refresh": ("app", "refresh", "POST /auth/refresh"),
    "login": ("app", "login", "POST /auth/login"),
    "mixed": ("app", "mixed", "mixed 88% me / 10% refresh / 2% login"),
    "me_under_login": ("app", "me", "GET /auth/me while logins run"),
}


# --- processes ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn -c gunicorn.conf.py APP in its own process group; ``stop`` kills the group."""

    def __init__(self, app: str, env: dict, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", app],
                cwd=ROOT, env={**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def wait_ready(self, path: str, timeout: float = 60) -> None:
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
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def worker_rss_mib(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                sizes.append(int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024)
        return sizes

    def stop(self) -> None:
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
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to recreate database {name!r}")
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {name}")
    finally:
        admin.close()


class Data:
    """Bench users and their tokens, made through the app's own code (in this process)."""

    def __init__(self, env: dict, users: int):
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        from auth_service import create_app
        from auth_service.extensions import db
        from auth_service.models import User
        from auth_service.passwords import hash_password

        self.app = create_app()
        with self.app.app_context():
            password_hash = hash_password(PASSWORD)  # one hash, shared: setup stays fast
            db.session.add_all(User(email=f"bench{i}@example.com", username=f"bench{i}",
                                    full_name=f"Bench {i}", password_hash=password_hash,
                                    email_verified=datetime.now(timezone.utc))
                               for i in range(users))
            db.session.commit()
            self.users = db.session.execute(
                db.select(User.id, User.email).order_by(User.id)).all()
            floor = [f"({i})" for i in range(1, users + 1)]
            db.session.execute(db.text(
                "CREATE TABLE bench_floor (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, "
                "touched_at timestamptz)"))
            db.session.execute(db.text(
                "CREATE TABLE bench_floor_log (jti varchar(36) PRIMARY KEY, floor_id int "
                "NOT NULL, created_at timestamptz NOT NULL)"))
            db.session.execute(db.text(f"INSERT INTO bench_floor (id) VALUES {','.join(floor)}"))
            db.session.commit()

    def token_file(self, path: Path) -> Path:
        """One line per user: id, access token, the refresh token of a new family, email."""
        from auth_service import tokens
        from auth_service.extensions import db
        from auth_service.models import User

        lines = []
        with self.app.test_request_context(headers={"User-Agent": "wrk"}):
            for user_id, email in self.users:
                pair = tokens.start_session(db.session.get(User, user_id))
                lines.append(f"{user_id} {pair.access_token} {pair.refresh_token} {email}")
            db.session.remove()
        path.write_text("\n".join(lines) + "\n")
        return path


def _hasher():
    from argon2 import PasswordHasher, Type

    sys.path.insert(0, str(ROOT))
    from config import Config

    return PasswordHasher(time_cost=Config.ARGON2_TIME_COST, memory_cost=Config.ARGON2_MEMORY_COST,
                          parallelism=Config.ARGON2_PARALLELISM, type=Type.ID)


def argon2_hash_seconds(count: int = 8) -> float:
    """Median time of one argon2id hash at the production parameters, on this machine now."""
    hasher = _hasher()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        hasher.hash(PASSWORD)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def argon2_hashes_per_second(seconds: float) -> float:
    """Hashes/s of one hashing thread per core for ``seconds`` (argon2 releases the GIL):
    cores / hash time as the machine grants it right now, other people's load included."""
    hasher, done = _hasher(), []
    deadline = time.monotonic() + seconds

    def work() -> None:
        count = 0
        while time.monotonic() < deadline:
            hasher.hash(PASSWORD)
            count += 1
        done.append(count)

    threads = [threading.Thread(target=work) for _ in range(CORES)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


# --- wrk ------------------------------------------------------------------------------

def parse_wrk(output: str) -> dict:
    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)\b", output).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    extra = dict(re.findall(r"(\w+)=(\d+)", re.search(r"BENCH (.*)", output).group(1)))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
            "p50": ms("50%"), "p99": ms("99%"), **{k: int(v) for k, v in extra.items()}}


def wrk(url: str, mode: str, tokens: Path, seconds: int, connections: int) -> subprocess.Popen:
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_TOKENS": str(tokens),
           "BENCH_PASSWORD": PASSWORD, "BENCH_CLOSE": "1" if CLOSE else "0"}
    return subprocess.Popen(
        ["wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "--timeout", "10s", "-s", str(LUA), url],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def finish(process: subprocess.Popen, seconds: int) -> dict:
    try:
        out, _ = process.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    if process.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    return parse_wrk(out)


# --- the run --------------------------------------------------------------------------

def environment(url: str) -> dict:
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
            or k.startswith(("GUNICORN_", "WEB_CONCURRENCY"))}
    return {
        **keep,
        "PATH": f"{VENV_BIN}{os.pathsep}{keep.get('PATH', '/usr/bin:/bin')}",
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": url,
        "FLOOR_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg2://", 1),
        "RATELIMIT_ENABLED": "false",  # benchmark only, see the docstring
        "GUNICORN_MAX_REQUESTS": "0",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        "MAIL_BACKEND": "console",
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{CORES} cores ({model}), Python {platform.python_version()}"


def run_workload(name, servers, data, workdir, seconds) -> dict:
    server_name, mode, _ = WORKLOADS[name]
    server = servers[server_name]
    tokens = data.token_file(workdir / f"tokens-{name}.txt")
    if name == "me_under_login":
        logins = wrk(server.url, "login", tokens, seconds + 2, CORES)
        time.sleep(1)  # logins at full speed before /auth/me is measured
        result = finish(wrk(server.url, mode, tokens, seconds, CONNECTIONS), seconds)
        result["login_rps"] = finish(logins, seconds + 2)["rps"]
    else:
        result = finish(wrk(server.url, mode, tokens, seconds, CONNECTIONS), seconds)
    result["rss"] = server.worker_rss_mib()
    result["load"] = load_average()
    return result


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: dict, hash_times: list[float], meta: dict) -> str:
    hash_s = statistics.median(hash_times)
    floors = {"me": median(results["floor_select"], "rps") if "floor_select" in results else None,
              "refresh": median(results["floor_write"], "rps") if "floor_write" in results else None,
              "login": CORES / hash_s}
    lines = [
        f"# auth_service benchmark, {meta['when']}",
        "",
        f"Machine: {meta['machine']}; load average at start {meta['load_start']}, "
        f"at end {meta['load_end']} (shared machine: compare ratios, not absolute numbers).",
        f"Server: gunicorn -c gunicorn.conf.py, {meta['server']}, same settings for the "
        "app and the floor app; app in the production config (argon2id "
        f"t={meta['argon2'][0]} m={meta['argon2'][1]} KiB p={meta['argon2'][2]}), "
        "PostgreSQL on 127.0.0.1. **Rate limits off (RATELIMIT_ENABLED=false) for the "
        "benchmark only**; worker recycling off (GUNICORN_MAX_REQUESTS=0).",
        f"Load: wrk -t{CONNECTIONS} -c{CONNECTIONS} -d{SECONDS}s"
        f"{' with Connection: close (a new connection per request, as nginx sends them)' if CLOSE else ' keep-alive'}"
        f", {WARMUP} s warm-up, {ROUNDS} interleaved rounds, median of rounds. "
        f"argon2id hash: {hash_s * 1000:.1f} ms (median), login floor = {CORES} cores "
        f"/ hash time = {floors['login']:.1f} req/s.",
        "",
        "| workload | req/s | p50 ms | p99 ms | errors | worker RSS MiB | floor req/s | ratio to floor | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    targets = {"me": 0.85, "refresh": 0.7, "login": 0.85}
    hash_floor = median(results["hash_floor"], "rps") if "hash_floor" in results else None
    for name, runs in results.items():
        if name == "hash_floor":
            continue
        rps = median(runs, "rps")
        rss = "/".join(f"{x:.0f}" for x in runs[-1]["rss"])
        errors = sum(r.get("errors", 0) for r in runs)
        floor = floors.get(name)
        ratio = f"{rps / floor:.2f}" if floor else ""
        target = ""
        if name in targets and floor:
            target = f"≥ {targets[name]} {'met' if rps / floor >= targets[name] else 'MISSED'}"
        lines.append(f"| {WORKLOADS[name][2]} | {rps:.1f} | {median(runs, 'p50'):.1f} | "
                     f"{median(runs, 'p99'):.1f} | {errors} | {rss} | "
                     f"{f'{floor:.1f}' if floor else ''} | {ratio} | {target} |")
    if hash_floor and "login" in results:
        login = median(results["login"], "rps")
        lines += ["", f"Login against argon2id measured under the same load: {CORES} threads "
                  f"hashing for {min(SECONDS, 5)} s in each round gave {hash_floor:.1f} hashes/s "
                  f"(the cores / hash time of the moment); login reaches {login / hash_floor:.2f}× "
                  f"of that (target ≥ 0.85: {'met' if login / hash_floor >= 0.85 else 'MISSED'}). "
                  f"The table's floor, {CORES} / {hash_s * 1000:.1f} ms, is one hash timed alone."]
    if "me" in results and "me_under_login" in results:
        alone, loaded = median(results["me"], "p99"), median(results["me_under_login"], "p99")
        logins = median(results["me_under_login"], "login_rps")
        lines += ["", f"/auth/me p99 alone {alone:.1f} ms, while {CORES} connections log in "
                  f"at full speed ({logins:.1f} logins/s) {loaded:.1f} ms: "
                  f"{loaded / alone:.2f}× (target ≤ 3×: {'met' if loaded / alone <= 3 else 'MISSED'})."]
    lines += ["", "Loads (1 min) during the rounds: " + "; ".join(
        f"{name} " + ", ".join(r["load"].split()[0] for r in runs) for name, runs in results.items())]
    return "\n".join(lines) + "\n"


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(text: str) -> None:
    """Put the latest table between the bench markers of the README's Performance section."""
    readme = ROOT / "README.md"
    content = readme.read_text()
    start, end = content.find(README_START), content.find(README_END)
    if start < 0 or end < start:
        return
    body = text.split("\n", 2)[2]  # without the title line
    readme.write_text(content[:start + len(README_START)] + "\n" + body.strip() + "\n"
                      + content[end:])


def chart(results: dict, path: Path, hash_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [("GET /auth/me", "me", "floor_select"),
             ("POST /auth/refresh", "refresh", "floor_write"),
             ("POST /auth/login", "login", None)]
    labels, app_rps, floor_rps = [], [], []
    for label, name, floor in pairs:
        if name not in results:
            continue
        labels.append(label)
        app_rps.append(median(results[name], "rps"))
        floor_rps.append(median(results[floor], "rps") if floor and floor in results
                         else CORES / hash_s if not floor else 0)
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], floor_rps, 0.4, label="floor of the stack", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], app_rps, 0.4, label="auth_service", color="#3b6ea5")
    for x, a, f in zip(xs, app_rps, floor_rps):
        if f:
            ax.text(x + 0.2, a, f"{a / f:.2f}×", ha="center", va="bottom")
    ax.set_xticks(list(xs), labels)
    ax.set_yscale("log")
    ax.set_ylabel("requests/s (log)")
    ax.set_title(f"auth_service vs its floor, {CORES} cores, median of {ROUNDS} rounds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def soak(servers, data, workdir) -> None:
    app = servers["app"]
    tokens = data.token_file(workdir / "tokens-soak.txt")
    samples = [(0.0, app.worker_rss_mib())]
    process = wrk(app.url, "mixed", tokens, SOAK_SECONDS, CONNECTIONS)
    started = time.monotonic()
    while process.poll() is None:
        time.sleep(SOAK_INTERVAL)
        samples.append((time.monotonic() - started, app.worker_rss_mib()))
    result = finish(process, SOAK_SECONDS)
    lines = [f"# Soak: mixed workload for {SOAK_SECONDS} s, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             "", f"Machine: {machine()}, load {load_average()}. {result['rps']:.1f} req/s, "
             f"p99 {result['p99']:.1f} ms, errors {result.get('errors', 0)}.", "",
             "| t s | worker RSS MiB |", "|---:|---|"]
    lines += [f"| {t:.0f} | {' / '.join(f'{x:.1f}' for x in rss)} |" for t, rss in samples]
    first = [s for s in samples if s[0] >= min(60, SOAK_SECONDS / 3)] or samples
    growth = max(sum(samples[-1][1]) - sum(first[0][1]), 0)
    lines += ["", f"Total worker RSS after warm-up {sum(first[0][1]):.1f} MiB, at the end "
              f"{sum(samples[-1][1]):.1f} MiB (growth {growth:.1f} MiB)."]
    (RESULTS / "soak.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i in range(max(len(s[1]) for s in samples)):
        ax.plot([t for t, r in samples if len(r) > i], [r[i] for t, r in samples if len(r) > i],
                label=f"worker {i + 1}")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Worker RSS during a {SOAK_SECONDS} s mixed soak")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "soak.png", dpi=100)
    plt.close(fig)


def main() -> None:
    only = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w] or list(WORKLOADS)
    workdir = Path(tempfile.mkdtemp(prefix="auth_service-bench-"))
    RESULTS.mkdir(exist_ok=True)
    env = environment(DATABASE_URL)
    servers: dict[str, Gunicorn] = {}
    meta = {"when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "machine": machine(),
            "load_start": load_average()}
    try:
        recreate_database(DATABASE_URL)
        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                       env=env, check=True, capture_output=True, timeout=120)
        data = Data(env, CONNECTIONS)
        servers["app"] = Gunicorn("wsgi:app", env, workdir / "app.log")
        servers["floor"] = Gunicorn("bench.floor_app:app", env, workdir / "floor.log")
        servers["app"].wait_ready("/readyz")
        servers["floor"].wait_ready("/healthz")
        config = subprocess.run(
            [str(VENV_BIN / "python"), "-c", "import runpy; c = runpy.run_path('gunicorn.conf.py');"
             "print(c['worker_class'], c['workers'], c['threads'])"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.split()
        meta["server"] = f"worker_class={config[0]} workers={config[1]} threads={config[2]}"
        from config import Config
        meta["argon2"] = (Config.ARGON2_TIME_COST, Config.ARGON2_MEMORY_COST,
                          Config.ARGON2_PARALLELISM)
        for name in ("floor_select", "me", "floor_write", "refresh", "login"):
            if WARMUP:
                run_workload(name, servers, data, workdir, WARMUP)
        if SOAK:
            soak(servers, data, workdir)
            return
        results: dict[str, list[dict]] = {}
        hash_times = []
        for round_number in range(ROUNDS):
            for name in only:
                if name == "login":
                    hash_times.append(argon2_hash_seconds())
                    results.setdefault("hash_floor", []).append(
                        {"rps": argon2_hashes_per_second(min(SECONDS, 5)), "load": load_average()})
                result = run_workload(name, servers, data, workdir, SECONDS)
                results.setdefault(name, []).append(result)
                print(f"round {round_number + 1} {name:15} {result['rps']:8.1f} req/s "
                      f"p50 {result['p50']:7.1f} p99 {result['p99']:7.1f} ms "
                      f"errors {result.get('errors', 0)} load {result['load']}", flush=True)
        if not hash_times:
            hash_times.append(argon2_hash_seconds())
        meta["load_end"] = load_average()
        text = report(results, hash_times, meta)
        (RESULTS / f"{OUTPUT}.md").write_text(text)
        if OUTPUT == "latest" or os.environ.get("BENCH_CHART"):
            chart(results, RESULTS / f"{OUTPUT}.png", statistics.median(hash_times))
        if OUTPUT == "latest":
            update_readme(text)
        raw = RESULTS / "raw" / f"{OUTPUT}.json"  # git-ignored
        raw.parent.mkdir(exist_ok=True)
        raw.write_text(json.dumps(results, indent=1))
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


if __name__ == "__main__":
    main()
