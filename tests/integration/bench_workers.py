"""Measure gunicorn worker classes for auth_service (the numbers in gunicorn.conf.py).

    .venv/bin/python tests/integration/bench_workers.py [--seconds 10] [--rounds 3]

Starts a private PostgreSQL and Redis (tests/integration/deploy_stack.py), then for each
candidate runs gunicorn with gunicorn.conf.py (production settings: argon2id m=19 MiB
t=2, Redis rate-limit counters, JSON logs to a file) and drives it with wrk on
127.0.0.1: GET /auth/me (JWT check + one user row) and POST /auth/login (one argon2id
verification, three Redis limit checks, one refresh-token row), every request on a new
connection as nginx sends them (deploy/nginx.conf keeps no upstream connections). Rounds are
interleaved so that load from elsewhere on the machine spreads over every candidate.
Not a test: run it by hand after changing the app's cost profile or the machine size.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_stack import (  # noqa: E402
    ROOT,
    VENV_BIN,
    Postgres,
    Redis,
    app_environment,
    free_port,
    local_session,
    spawn,
    stop_process,
    wait_until,
)

CANDIDATES = {
    "sync w=5": {"GUNICORN_WORKER_CLASS": "sync", "WEB_CONCURRENCY": "5"},
    "gthread w=2 t=4": {
        "GUNICORN_WORKER_CLASS": "gthread",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
    },
    "gthread w=5 t=2": {
        "GUNICORN_WORKER_CLASS": "gthread",
        "WEB_CONCURRENCY": "5",
        "GUNICORN_THREADS": "2",
    },
    "sync w=3": {"GUNICORN_WORKER_CLASS": "sync", "WEB_CONCURRENCY": "3"},
}
USER = {
    "email": "bench@example.com",
    "username": "bench",
    "password": "bench horse battery",
    "full_name": "Bench",
}
LOGIN_LUA = """
wrk.method = "POST"
wrk.body = '{"email": "bench@example.com", "password": "bench horse battery"}'
wrk.headers["Content-Type"] = "application/json"
"""


def parse_wrk(output: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)\b", output).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "rps": rps,
        "p50": ms("50%"),
        "p99": ms("99%"),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def pss_mib(master: int) -> float:
    """Proportional set size of the master and its workers (shared pages split fairly)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0
    for pid in [master, *map(int, children)]:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        total += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1))
    return total / 1024


def run(args) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="auth_service-bench-"))
    os.chmod(workdir, 0o755)
    postgres, redis_server = Postgres(workdir), Redis(workdir)
    lua = workdir / "login.lua"
    lua.write_text(LOGIN_LUA)
    try:
        postgres.create()
        redis_server.start()
        environ = app_environment(postgres.url, redis_server.url)
        environ.update(
            {
                "RATELIMIT_LOGIN_PER_IP": "1000000 per minute",
                "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP": "1000000 per minute",
                "GUNICORN_MAX_REQUESTS": "0",
            }
        )
        subprocess.run(
            [str(VENV_BIN / "flask"), "db", "upgrade"],
            cwd=ROOT,
            env=environ,
            check=True,
            capture_output=True,
            timeout=120,
        )
        results: dict[tuple[str, str], list[dict]] = {}
        memory: dict[str, float] = {}
        candidates = {name: CANDIDATES[name] for name in (args.only or CANDIDATES)}
        for round_number in range(args.rounds):
            for name, overrides in candidates.items():
                # Round 0 also measures memory with the other preload setting.
                for preload in (
                    [args.preload, not args.preload] if round_number == 0 else [args.preload]
                ):
                    port = free_port()
                    env = {
                        **environ,
                        **overrides,
                        "GUNICORN_BIND": f"127.0.0.1:{port}",
                        "GUNICORN_PRELOAD": "true" if preload else "false",
                    }
                    command = [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
                    process = spawn(command, workdir / "gunicorn.log", cwd=ROOT, env=env)
                    url = f"http://127.0.0.1:{port}"
                    session = local_session()
                    try:
                        wait_until(
                            lambda: session.get(url + "/readyz", timeout=2).ok,
                            60,
                            name,
                            log=workdir / "gunicorn.log",
                        )
                        session.post(url + "/auth/signup", json=USER, timeout=10)
                        token = session.post(
                            url + "/auth/login",
                            timeout=10,
                            json={k: USER[k] for k in ("email", "password")},
                        ).json()["access_token"]
                        for _ in range(20):  # warm every worker
                            session.get(
                                url + "/auth/me",
                                timeout=10,
                                headers={"Authorization": f"Bearer {token}"},
                            )
                        if round_number == 0:
                            label = f"{name}, preload={'on' if preload else 'off'}"
                            memory[label] = pss_mib(process.pid)
                        if preload != args.preload:
                            continue
                        for endpoint, extra in (
                            (
                                "GET /auth/me",
                                ["-H", f"Authorization: Bearer {token}", url + "/auth/me"],
                            ),
                            ("POST /auth/login", ["-s", str(lua), url + "/auth/login"]),
                        ):
                            out = subprocess.run(
                                [
                                    "wrk",
                                    "-t1",
                                    f"-c{args.connections}",
                                    f"-d{args.seconds}s",
                                    "--latency",
                                    "-H",
                                    "Connection: close",
                                    *extra,
                                ],
                                capture_output=True,
                                text=True,
                                check=True,
                                timeout=args.seconds + 60,
                            ).stdout
                            results.setdefault((name, endpoint), []).append(parse_wrk(out))
                    finally:
                        session.close()
                        stop_process(process, signal.SIGTERM)
        print(
            f"wrk -t1 -c{args.connections} -d{args.seconds}s -H 'Connection: close', "
            f"preload={'on' if args.preload else 'off'}, {args.rounds} interleaved rounds,"
            f" {os.cpu_count()} cores; median of rounds"
        )
        print(
            f"{'candidate':18} {'endpoint':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'non-2xx':>8}"
        )
        for (name, endpoint), runs in results.items():
            print(
                f"{name:18} {endpoint:18} {statistics.median(r['rps'] for r in runs):8.1f}"
                f" {statistics.median(r['p50'] for r in runs):8.1f}"
                f" {statistics.median(r['p99'] for r in runs):8.1f}"
                f" {sum(r['non2xx'] for r in runs):8d}"
            )
        print("memory (PSS of master + workers, MiB):")
        for label, mib in memory.items():
            print(f"  {label:32} {mib:7.1f}")
    finally:
        redis_server.close()
        postgres.close()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--preload", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--only",
        action="append",
        choices=list(CANDIDATES),
        help="measure only this candidate (repeatable)",
    )
    run(parser.parse_args())
