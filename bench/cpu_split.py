"""Where a request's CPU goes under load: ``python -m bench cpu-split me|jwks|refresh|login``.

Starts the app and the floor app as bench/run.py does (the ``bench`` database re-created),
then, after a warm-up that opens the pools' connections, runs wrk against the endpoint
and against its floor in turn, BENCH_ROUNDS (3) rounds of BENCH_SECONDS (10), and reads
from /proc the CPU time that the gunicorn workers, PostgreSQL's processes and the whole
machine (wrk included) spent per request. The in-process cost is bench/profile.py's;
this is what a served request costs around it.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bench.run import TICK, environment, finish, process_seconds, settle, start, wrk
from bench.settings import WORKLOADS, Settings

FLOORS = {
    "me": "floor_verify",
    "jwks": "floor_jwks",
    "refresh": "floor_write",
    "login": "floor_login",
}


def machine_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all but idle and iowait)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def postgres_pids() -> list[int]:
    """PostgreSQL's processes: the server and its backends."""
    found = subprocess.run(["pgrep", "-f", "postgres"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def measure(
    settings: Settings, name: str, servers: dict, data, workdir: Path, seconds: int, server=None
) -> dict:
    """One wrk run of workload ``name`` (against ``server``, else the workload's own),
    with fresh tokens (a refresh spends its own): req/s and CPU milliseconds per
    request. RuntimeError if any request failed."""
    server_name, mode, _ = WORKLOADS[name]
    server = server or servers[server_name]
    tokens = data.token_file(workdir / f"tokens-{name}.txt")
    settle(servers)  # the last run's requests counted against it, not against this one
    workers, postgres = server.worker_pids(), postgres_pids()
    before = process_seconds(workers), process_seconds(postgres), machine_seconds()
    result = finish(
        wrk(server.url, mode, tokens, seconds, settings.connections, settings.close), seconds
    )
    after = process_seconds(workers), process_seconds(postgres), machine_seconds()
    if result.get("errors"):
        raise RuntimeError(f"{name}: {result['errors']} requests failed: {result}")
    done = result["rps"] * seconds
    workers_ms, postgres_ms, machine_ms = (
        (b - a) * 1000 / done for a, b in zip(before, after, strict=True)
    )
    return {
        "rps": result["rps"],
        "workers": workers_ms,
        "postgres": postgres_ms,
        "machine": machine_ms,
    }


def main(settings: Settings, endpoint: str) -> None:
    """Measure ``endpoint`` and its floor in interleaved rounds; print one line per run."""
    workdir = Path(tempfile.mkdtemp(prefix="auth_service-cpu-"))
    servers: dict = {}
    try:
        data = start(settings, environment(settings.database_url), workdir, servers)
        for name in (FLOORS[endpoint], endpoint):  # the backends counted exist from now on
            measure(settings, name, servers, data, workdir, max(settings.warmup, 1))
        print(
            f"{'round':5} {'workload':13} {'req/s':>8}  CPU ms per request: "
            f"{'workers':>7} {'postgres':>8} {'machine':>7}"
        )
        for round_number in range(settings.rounds):
            for name in (FLOORS[endpoint], endpoint):
                row = measure(settings, name, servers, data, workdir, settings.seconds)
                print(
                    f"{round_number + 1:5} {name:13} {row['rps']:8.1f}  {'':20}"
                    f"{row['workers']:7.3f} {row['postgres']:8.3f} {row['machine']:7.3f}",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
