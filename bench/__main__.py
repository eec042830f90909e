"""auth_service's benchmark and its investigations: ``python -m bench COMMAND`` (repo root).

The settings are read once from the environment (bench/settings.py) and handed to the
command; each command's module says what it measures.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from bench.settings import Settings

ENDPOINTS = ("me", "jwks", "refresh", "login")
PROFILE_PATHS = (
    "me",
    "jwks",
    "refresh",
    "login",
    "floor_select",
    "floor_verify",
    "floor_jwks",
    "floor_write",
)
PERF_PATHS = (*PROFILE_PATHS, "floor_login")


def checkout(value: str) -> Path:
    """A directory holding another checkout of the project (its wsgi.py)."""
    path = Path(value).resolve()
    if not (path / "wsgi.py").is_file():
        raise argparse.ArgumentTypeError(f"{value} is no checkout of auth_service (no wsgi.py)")
    return path


def positive(value: str) -> int:
    """A whole number above zero."""
    if not value.isdigit() or int(value) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above zero")
    return int(value)


def parser() -> argparse.ArgumentParser:
    """The commands, their arguments, and how each calls its module's ``main``."""
    top = argparse.ArgumentParser(
        prog="python -m bench",
        description="auth_service's benchmark and its investigations (run from the repo root).",
        epilog="Settings come from BENCH_* variables: see bench/settings.py.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, module: str, call, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(module=module, call=call)
        return sub

    command(
        "run",
        "run",
        lambda main, settings, args: main(settings),
        "the app against the floor of its stack (make bench)",
    )
    ab = command(
        "ab",
        "ab",
        lambda main, settings, args: main(settings, args.endpoint, args.base),
        "this checkout against another, served side by side",
    )
    ab.add_argument("endpoint", choices=ENDPOINTS)
    ab.add_argument("base", type=checkout, help="the other checkout (e.g. a git worktree)")
    command(
        "hash",
        "hash_scaling",
        lambda main, settings, args: main(settings),
        "argon2id over this machine's cores (make bench-hash)",
    )
    profile = command(
        "profile",
        "profile",
        lambda main, settings, args: main(settings, args.path, args.count),
        "one hot path profiled in process",
    )
    profile.add_argument("path", nargs="?", default="me", choices=PROFILE_PATHS)
    profile.add_argument("count", nargs="?", default=1000, type=positive)
    cpu = command(
        "cpu-split",
        "cpu_split",
        lambda main, settings, args: main(settings, args.endpoint),
        "CPU per request: workers, PostgreSQL, the machine",
    )
    cpu.add_argument("endpoint", choices=ENDPOINTS)
    perf = command(
        "perf-split",
        "perf_split",
        lambda main, settings, args: main(settings, args.endpoint, args.seconds),
        "what the CPU does while an endpoint is served (perf)",
    )
    perf.add_argument("endpoint", choices=PERF_PATHS)
    perf.add_argument("seconds", nargs="?", default=6, type=positive)
    timing = command(
        "login-timing",
        "login_timing",
        lambda main, settings, args: main(args),
        "failed-login time across an argon2 parameter change",
    )
    timing.add_argument("--rounds", type=positive, default=200)
    timing.add_argument("--old-time-cost", type=positive, default=2)
    timing.add_argument("--old-memory-cost", type=positive, default=12 * 1024)
    timing.add_argument("--without-top-up", action="store_true")
    return top


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, read the settings once, run the command."""
    args = parser().parse_args(argv)
    # Imported only now: a command's module may import the app, which reads its config.
    module = importlib.import_module(f"bench.{args.module}")
    settings = Settings.from_environ(**getattr(module, "DEFAULTS", {}))
    args.call(module.main, settings, args)


if __name__ == "__main__":
    main(sys.argv[1:])
