"""Where the machine's CPU goes while one endpoint is served: ``python -m bench perf-split
me|refresh|login|floor_select|floor_write|floor_login [seconds]``.

Starts the app and the floor app as bench/run.py does (the ``bench`` database re-created),
warms the endpoint up, then samples every CPU with ``perf record -a -g`` (Debian's
linux-perf; root, or kernel.perf_event_paranoid at -1) for ``seconds`` (default 6) in the
middle of a wrk run, and sorts the samples by what they were doing: argon2id's
computation, the kernel mapping and unmapping a hash's memory (libsodium maps 19 MiB
with MAP_POPULATE per hash), the workers' Python and C extensions, the rest of their
kernel time (sockets, scheduling), PostgreSQL, wrk, the rest of the machine and idle.
bench/cpu_split.py says which processes spend a request's CPU; this says on what.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.run import environment, finish, settle, start, wrk
from bench.settings import WORKLOADS, Settings

ENDPOINTS = ("me", "refresh", "login", "floor_select", "floor_write", "floor_login")
# libc's entry points through which libsodium maps and unmaps a hash's memory.
MAPPING_CALLS = ("__mmap", "mmap64", "__munmap", "munmap")
SAMPLE_HZ = 997  # per CPU; prime, so as not to beat with a periodic timer
CATEGORIES = {
    "hash": "argon2id computation (libsodium)",
    "hash_memory": "kernel: mapping and unmapping the hash's memory",
    "python": "workers: Python and C extensions",
    "worker_kernel": "workers: other kernel work (sockets, scheduling, ...)",
    "postgres": "PostgreSQL",
    "wrk": "wrk (the load generator)",
    "other": "rest of the machine",
    "idle": "idle",
}


def category(comm: str, frames: list[tuple[str, str]]) -> str:
    """What one sample was doing: ``frames`` are (symbol, object) pairs, leaf first."""
    if comm == "swapper":
        return "idle"
    if comm.startswith("postgres"):
        return "postgres"
    if comm == "wrk":
        return "wrk"
    if comm != "gunicorn" or not frames:
        return "other"
    dso = frames[0][1]
    if "_sodium" in dso:
        return "hash"
    if dso == "[kernel.kallsyms]":
        if any(name in MAPPING_CALLS for name, _ in frames) and any(
            "_sodium" in caller for _, caller in frames
        ):
            return "hash_memory"
        return "worker_kernel"
    return "python"


def parse(script: str) -> collections.Counter:
    """Samples per category in ``perf script -F comm,ip,sym,dso`` output (blank-line separated)."""
    counts: collections.Counter = collections.Counter()
    for block in script.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines:
            continue
        frames = []
        for line in lines[1:]:
            name, _, dso = line.rpartition(" (")
            frames.append((name.split("+", 1)[0].split()[-1] if name else "", dso.rstrip(")")))
        counts[category(lines[0].split()[0], frames)] += 1
    return counts


def record(seconds: int, output: Path) -> str:
    """``perf record`` of every CPU for ``seconds``, as ``perf script`` text."""
    subprocess.run(
        [
            "perf",
            "record",
            "-a",
            "-g",
            "-F",
            str(SAMPLE_HZ),
            "-o",
            str(output),
            "--",
            "sleep",
            str(seconds),
        ],
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        ["perf", "script", "-i", str(output), "-F", "comm,ip,sym,dso"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def main(settings: Settings, endpoint: str, seconds: int) -> None:
    """Serve ``endpoint`` under wrk, sample the machine in the middle, print the split."""
    if not shutil.which("perf"):
        raise SystemExit("perf is missing: apt-get install linux-perf")
    workdir = Path(tempfile.mkdtemp(prefix="auth_service-perf-"))
    servers: dict = {}
    server_name, mode, label = WORKLOADS[endpoint]
    try:
        data = start(settings, environment(settings.database_url), workdir, servers)
        url, warmup = servers[server_name].url, max(settings.warmup, 1)
        finish(
            wrk(
                url,
                mode,
                data.token_file(workdir / "warmup.txt"),
                warmup,
                settings.connections,
                settings.close,
            ),
            warmup,
        )
        settle(servers)
        load = wrk(
            url,
            mode,
            data.token_file(workdir / "tokens.txt"),
            seconds + 4,
            settings.connections,
            settings.close,
        )
        time.sleep(2)  # sample the middle of the run, not its start or end
        counts = parse(record(seconds, workdir / "perf.data"))
        result = finish(load, seconds + 4)
    finally:
        for server in servers.values():
            server.stop()
    total, requests = sum(counts.values()), result["rps"] * seconds
    busy = total - counts["idle"]
    print(f"{label}: {result['rps']:.1f} req/s; {total} samples of every CPU over {seconds} s")
    print(f"{'':55} {'of busy':>7} {'CPU ms per request':>19}")
    for key, text in CATEGORIES.items():
        share = f"{counts[key] / busy:7.1%}" if key != "idle" and busy else " " * 7
        print(f"{text:55} {share} {counts[key] * 1000 / SAMPLE_HZ / requests:19.3f}")
