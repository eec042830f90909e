"""The benchmark's settings: every variable it reads, read once, here.

``python -m bench`` builds one ``Settings`` from the environment and hands it to the
command; no other module of bench/ reads a BENCH_* variable. (bench/floor_app.py reads
the FLOOR_* variables of the server it runs in, which bench/run.py's ``environment`` sets.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
# The floor app; another one only for an experiment (bench/floor_headers.py).
DEFAULT_FLOOR_APP = "bench.floor_app:app"

# name -> (server, wrk mode, label)
WORKLOADS = {
    "floor_select": ("floor", "floor_select", "floor: SELECT by primary key"),
    "floor_verify": ("floor", "floor_verify", "floor: PyJWT verifies the token, then the SELECT"),
    "me": ("app", "me", "GET /auth/me"),
    "floor_jwks": ("floor", "floor_jwks", "floor: the JWKS as static JSON"),
    "jwks": ("app", "jwks", "GET /.well-known/jwks.json"),
    "floor_write": ("floor", "floor_write", "floor: verify, UPDATE + INSERT, sign a pair"),
    "refresh": ("app", "refresh", "POST /auth/refresh"),
    "floor_login": ("floor", "floor_login", "floor: a login that verifies the hash, signs a pair"),
    "login": ("app", "login", "POST /auth/login"),
    "mixed": ("app", "mixed", "mixed 88% me / 10% refresh / 2% login"),
    "me_under_login": ("app", "me", "GET /auth/me while logins run"),
}


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Settings:
    """How a benchmark command runs. Each field has an environment variable (``ENV``);
    a command may bring its own defaults (``python -m bench ab`` runs 6 rounds of 8 s)."""

    seconds: int = 10  # BENCH_SECONDS: length of one measured wrk run
    rounds: int = 3  # BENCH_ROUNDS: interleaved rounds, medians reported
    connections: int = 16  # BENCH_CONNECTIONS: wrk's threads and connections
    warmup: int = 3  # BENCH_WARMUP: seconds of each workload before the rounds (0: none)
    close: bool = True  # BENCH_CLOSE: a new connection per request, as nginx sends them
    database_url: str = DEFAULT_DATABASE_URL  # BENCH_DATABASE_URL: dropped and re-created
    only: tuple[str, ...] = tuple(WORKLOADS)  # BENCH_ONLY: comma-separated workload names
    floor_app: str = DEFAULT_FLOOR_APP  # BENCH_FLOOR_APP: module:app of the floor server
    algorithm: str = "ES256"  # BENCH_ALGORITHM: the app's JWT_ALGORITHM (ES256, EdDSA, RS256)
    cores: int = field(default_factory=available_cores)
    login_connections: int = 0  # BENCH_LOGIN_CONNECTIONS: logins beside /auth/me (0: cores)
    output: str = "latest"  # BENCH_OUTPUT: name of the result files in bench/results
    chart: bool = False  # BENCH_CHART: draw the chart of a run whose output is not "latest"
    soak: bool = False  # SOAK: the mixed workload for soak_seconds instead of the rounds
    soak_seconds: int = 300  # SOAK_SECONDS
    soak_interval: int = 10  # SOAK_INTERVAL: seconds between two samples of worker RSS
    hash_seconds: float = 4  # BENCH_HASH_SECONDS: length of one rate in `hash`
    profile_all: bool = False  # PROFILE_ALL: pyinstrument's tree without hiding library frames

    def __post_init__(self) -> None:
        if not self.login_connections:
            object.__setattr__(self, "login_connections", self.cores)
        unknown = [name for name in self.only if name not in WORKLOADS]
        if unknown:
            raise SettingsError(
                f"BENCH_ONLY: unknown workload {', '.join(unknown)}; "
                f"choose from {', '.join(WORKLOADS)}"
            )

    @property
    def root(self) -> Path:
        """The checkout under test."""
        return ROOT

    @property
    def labels(self) -> dict[str, str]:
        """Workload name -> its label in the results table."""
        return {name: label for name, (_, _, label) in WORKLOADS.items()}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ, **defaults) -> Settings:
        """Settings from ``environ``; ``defaults`` replace the class's for unset variables."""
        values = dict(defaults)
        for item in fields(cls):
            name = ENVIRONMENT.get(item.name)
            raw = environ.get(name, "") if name else ""
            if raw.strip():
                values[item.name] = parse(name, raw, item.type)
        return cls(**values)


class SettingsError(SystemExit):
    """A variable that cannot be read: one line on stderr, exit status 1."""


# Field -> its environment variable (cores is the machine's, not a setting).
ENVIRONMENT = {
    "seconds": "BENCH_SECONDS",
    "rounds": "BENCH_ROUNDS",
    "connections": "BENCH_CONNECTIONS",
    "warmup": "BENCH_WARMUP",
    "close": "BENCH_CLOSE",
    "database_url": "BENCH_DATABASE_URL",
    "only": "BENCH_ONLY",
    "floor_app": "BENCH_FLOOR_APP",
    "algorithm": "BENCH_ALGORITHM",
    "login_connections": "BENCH_LOGIN_CONNECTIONS",
    "output": "BENCH_OUTPUT",
    "chart": "BENCH_CHART",
    "soak": "SOAK",
    "soak_seconds": "SOAK_SECONDS",
    "soak_interval": "SOAK_INTERVAL",
    "hash_seconds": "BENCH_HASH_SECONDS",
    "profile_all": "PROFILE_ALL",
}


def parse(name: str, raw: str, kind: str):
    """``raw`` as the field's type (annotations are strings here: postponed evaluation)."""
    raw = raw.strip()
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be 1 or 0, not {raw!r}")
    if kind in ("int", "float"):
        try:
            number = int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, not {raw!r}") from None
        if number < 0:
            raise SettingsError(f"{name} must not be negative, not {raw!r}")
        return number
    if kind == "tuple[str, ...]":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
