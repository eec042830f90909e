"""A change against its baseline, served side by side: ``python -m bench ab me|refresh|login BASE``.

BASE is another checkout of the project, the code before the change (for example
``git worktree add /tmp/base HEAD~1``). Starts, as bench/run.py does, the floor app and
this checkout's app, then BASE's app with the same settings on the same database, and
runs wrk against the floor, BASE and this checkout in turn, BENCH_ROUNDS (here 6) rounds
of BENCH_SECONDS (here 8), the order reversed every other round. Prints per round req/s, the
ratio to the floor of that round, and the workers' CPU per request (from /proc); then
the medians. Two runs of bench/run.py minutes apart differ by more than most changes
do on a shared machine; rounds interleaved against one floor are what a commit message
can quote.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.cpu_split import FLOORS, measure
from bench.run import Gunicorn, environment, start
from bench.settings import Settings

# The command's own defaults: more, shorter rounds than run's, since a change is smaller
# than the gap to the floor.
DEFAULTS = {"rounds": 6, "seconds": 8}
SIDES = ("floor", "base", "app")


def main(settings: Settings, endpoint: str, base: Path) -> None:
    """Measure the floor, BASE and this checkout in interleaved rounds; print them."""
    workdir = Path(tempfile.mkdtemp(prefix="auth_service-ab-"))
    servers: dict = {}
    try:
        env = environment(settings.database_url)
        data = start(settings, env, workdir, servers)
        servers["base"] = Gunicorn("wsgi:app", env, workdir / "base.log", cwd=base)
        servers["base"].wait_ready("/readyz")
        workloads = {"floor": FLOORS[endpoint], "base": endpoint, "app": endpoint}
        for side in SIDES:  # warm-up: every pool opens its connections
            measure(settings, workloads[side], servers, data, workdir, 3, server=servers[side])
        rows: dict[str, list[dict]] = {side: [] for side in SIDES}
        for number in range(settings.rounds):
            for side in SIDES if number % 2 == 0 else SIDES[::-1]:
                rows[side].append(
                    measure(
                        settings,
                        workloads[side],
                        servers,
                        data,
                        workdir,
                        settings.seconds,
                        server=servers[side],
                    )
                )
            floor = rows["floor"][-1]
            print(
                f"round {number + 1}: "
                + "  ".join(
                    f"{side} {rows[side][-1]['rps']:7.1f} req/s"
                    + (f" ({rows[side][-1]['rps'] / floor['rps']:.2f})" if side != "floor" else "")
                    + f" {rows[side][-1]['workers']:.3f} ms"
                    for side in SIDES
                ),
                flush=True,
            )
        ratios = {
            side: statistics.median(
                row["rps"] / floor["rps"]
                for row, floor in zip(rows[side], rows["floor"], strict=True)
            )
            for side in ("base", "app")
        }
        cpu = {side: statistics.median(row["workers"] for row in rows[side]) for side in SIDES}
        print(
            f"{endpoint}, medians of {settings.rounds} rounds of {settings.seconds} s: "
            f"ratio to the floor "
            f"base {ratios['base']:.2f}, this checkout {ratios['app']:.2f}; worker CPU per "
            f"request floor {cpu['floor']:.3f}, base {cpu['base']:.3f}, "
            f"this checkout {cpu['app']:.3f} ms"
        )
    finally:
        for server in servers.values():
            server.stop()
