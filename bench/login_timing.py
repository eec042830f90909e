"""Failed-login time after an argon2 parameter change: unknown email against an account
whose hash predates the change (``python -m bench login-timing``).

An account is signed up with older parameters (``--old-time-cost``, ``--old-memory-cost``;
t=2 and 12 MiB by default), then wrong passwords are sent to an app at the default
parameters (t=2, 19 MiB) for that account,
for an account hashed at the new parameters and for an unknown email, interleaved in a
random order, through the test client on a throwaway SQLite file. ``--without-top-up``
turns off what auth_service.security.passwords does to equalise them, i.e. measures the code
before it. Prints a Markdown table (medians, 10th and 90th percentiles, in ms).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time

from auth_service import create_app
from auth_service.extensions import db
from auth_service.security import passwords
from config import DevelopmentConfig

PASSWORD = "bench horse battery staple"
KINDS = {
    "unknown email": "nobody@example.com",
    "account, old hash": "old@example.com",
    "account, current hash": "new@example.com",
}


def app_with(database: str, time_cost: int, memory_cost: int):
    config = type(
        "Bench",
        (DevelopmentConfig,),
        {
            "READ_ENVIRONMENT": False,
            "DATABASE_URL": database,
            "ARGON2_TIME_COST": time_cost,
            "ARGON2_MEMORY_COST": memory_cost,
            "RATELIMIT_ENABLED": False,
            "LOG_REQUESTS": False,
            "LOG_LEVEL": "WARNING",
        },
    )
    return create_app(config)


def signup(app, email: str) -> None:
    response = app.test_client().post(
        "/auth/signup", json={"email": email, "username": email.split("@")[0], "password": PASSWORD}
    )
    assert response.status_code == 201, response.json


def measure(rounds: int, old: tuple[int, int]) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite:///{directory}/timing.db"
        before = app_with(database, *old)
        with before.app_context():
            db.create_all()
        signup(before, KINDS["account, old hash"])
        after = app_with(
            database, DevelopmentConfig.ARGON2_TIME_COST, DevelopmentConfig.ARGON2_MEMORY_COST
        )
        signup(after, KINDS["account, current hash"])
        client = after.test_client()
        times = {kind: [] for kind in KINDS}
        order = list(KINDS) * rounds
        random.shuffle(order)
        for kind in ["unknown email"] * 5 + order:  # the first few warm up
            started = time.perf_counter()
            response = client.post(
                "/auth/login", json={"email": KINDS[kind], "password": "wrong password"}
            )
            times[kind].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 401
        times["unknown email"] = times["unknown email"][5:]
        return times


def main(args) -> None:
    """Print the table for ``args`` (``python -m bench login-timing --help``)."""
    if args.without_top_up:
        passwords._top_up = lambda *_: None
    times = measure(args.rounds, (args.old_time_cost, args.old_memory_cost))
    print(
        f"old hash t={args.old_time_cost} m={args.old_memory_cost}, current "
        f"t={DevelopmentConfig.ARGON2_TIME_COST} m={DevelopmentConfig.ARGON2_MEMORY_COST}; "
        f"{'without' if args.without_top_up else 'with'} the top-up; {args.rounds} logins each"
    )
    print("| failed login for | median ms | p10 ms | p90 ms |\n|---|---:|---:|---:|")
    for kind, values in times.items():
        deciles = statistics.quantiles(values, n=10)
        print(
            f"| {kind} | {statistics.median(values):.1f} | {deciles[0]:.1f} | {deciles[-1]:.1f} |"
        )
