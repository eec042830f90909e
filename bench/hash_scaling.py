"""How argon2id at the production parameters scales over this machine's cores: ``make bench-hash``.

bench/run.py puts the login floor at cores / the time of one hash, which assumes that
hashes on different cores do not slow each other down. This measures that assumption for
each argon2id implementation installed here, in BENCH_ROUNDS (3) interleaved rounds: the
median time of one hash alone, then hashes/s of one thread, of one thread per core and of
one process per core, each for BENCH_HASH_SECONDS (4); then as gunicorn.conf.py's workers
hash (one process per core, 4 threads each), with every thread free to hash and with one
hash at a time per process (ARGON2_CONCURRENCY). Writes bench/results/hash_scaling.md.

- libsodium (PyNaCl, the app's hasher) maps its 19 MiB with mmap(MAP_POPULATE) and unmaps
  it after every hash: the kernel zeroes and frees 4,864 pages per hash on each core.
- argon2-cffi (the reference code) and OpenSSL (through cryptography, which authlib
  installs) take their memory from malloc, which hands the same memory back each time.
"""

from __future__ import annotations

import os
import statistics
from datetime import UTC, datetime

from bench.report import load_average, machine
from bench.run import PASSWORD, hashes_per_second, production_hasher, time_one_hash
from bench.settings import RESULTS, Settings
from config import Config

# gunicorn.conf.py's default: 4 threads in each worker process.
THREADS = 4


def _openssl():
    """OpenSSL's argon2id through cryptography, or None where this build has none."""
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
    except ImportError:  # cryptography before 44
        return None

    def derive() -> None:
        Argon2id(
            salt=os.urandom(16),
            length=32,
            iterations=Config.ARGON2_TIME_COST,
            lanes=Config.ARGON2_PARALLELISM,
            memory_cost=Config.ARGON2_MEMORY_COST,
        ).derive(PASSWORD.encode())

    try:
        derive()  # also the warm-up: OpenSSL's first hash takes twice as long
    except UnsupportedAlgorithm:  # OpenSSL before 3.2
        return None
    return derive


def implementations() -> dict:
    """Name -> a function computing one hash of PASSWORD at the production parameters."""
    sodium, reference = production_hasher(), production_hasher(reference=True)
    found = {
        "libsodium (PyNaCl): the app's": lambda: sodium.hash(PASSWORD),
        "argon2-cffi: reference code": lambda: reference.hash(PASSWORD),
    }
    if openssl := _openssl():
        found["OpenSSL (cryptography)"] = openssl
    return found


def main(settings: Settings) -> None:
    """Measure each implementation in interleaved rounds; write hash_scaling.md."""
    cores, seconds, rounds = settings.cores, settings.hash_seconds, settings.rounds
    workers = max(2, cores)  # gunicorn.conf.py's default: a process per core, at least 2
    found = implementations()
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in found}
    load_start = load_average()
    for round_number in range(rounds):
        for name, compute in found.items():
            rows[name].append(
                (
                    time_one_hash(compute),
                    hashes_per_second(compute, 1, seconds),
                    hashes_per_second(compute, cores, seconds),
                    hashes_per_second(compute, cores, seconds, processes=True),
                    hashes_per_second(compute, workers, seconds, processes=True, threads=THREADS),
                    hashes_per_second(
                        compute,
                        workers,
                        seconds,
                        processes=True,
                        threads=THREADS,
                        slots=max(1, cores // workers),
                    ),
                )
            )
            print(
                f"round {round_number + 1} {name:32} "
                + " ".join(f"{value:8.4f}" for value in rows[name][-1]),
                flush=True,
            )
    lines = [
        f"# argon2id over {cores} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine(cores)}; load average at start {load_start}, at end "
        f"{load_average()}. argon2id t={Config.ARGON2_TIME_COST} m={Config.ARGON2_MEMORY_COST} "
        f"KiB p={Config.ARGON2_PARALLELISM}; medians of {rounds} interleaved rounds, "
        f"{seconds:g} s per rate (`make bench-hash`).",
        "",
        f"| implementation | one hash ms | cores / hash time /s | 1 thread /s | {cores} threads /s "
        f"| {cores} processes /s | best of {cores} against cores / hash time "
        f"| {workers} processes x {THREADS} threads /s | the same, one hash at a time per "
        "process /s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, measured in rows.items():
        alone, one, threads, processes, pooled, capped = (
            statistics.median(column) for column in zip(*measured, strict=True)
        )
        floor = cores / alone
        lines.append(
            f"| {name} | {alone * 1000:.1f} | {floor:.1f} | {one:.1f} | {threads:.1f} "
            f"| {processes:.1f} | {max(threads, processes) / floor:.2f} "
            f"| {pooled:.1f} | {capped:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hash_scaling.md").write_text(text)
    print(text, end="")
