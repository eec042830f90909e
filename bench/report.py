"""The presentation side of bench/run.py: the results table and the charts.

Nothing here measures anything; run.py hands over its results and the run's ``Settings``
(bench/settings.py).
"""

from __future__ import annotations

import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

from bench.settings import Settings

THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages of this machine, space separated."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def transparent_hugepages(setting: Path = THP_SETTING) -> str | None:
    """The kernel's transparent huge page mode (always, madvise, never), None if unknown."""
    try:
        text = setting.read_text()
    except OSError:
        return None
    return text[text.index("[") + 1 : text.index("]")] if "[" in text else None


def machine(cores: int) -> str:
    """Core count, CPU model, Python version and huge page mode of this machine, in one
    line. The mode changes a login by a fifth: libsodium maps each hash's 19 MiB afresh,
    in 2 MiB pages only under "always" (docs/deployment.md)."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    thp = transparent_hugepages()
    return f"{cores} cores ({model}), Python {platform.python_version()}" + (
        f", transparent huge pages {thp}" if thp else ""
    )


def median(runs: list[dict], key: str) -> float:
    """Median of ``key`` over the rounds of one workload."""
    return statistics.median(r[key] for r in runs)


# Which floor each workload is measured against: another workload's rounds, or
# "hash" (cores / the time of one argon2id hash and one pair signed, timed in each round
# before login).
# /auth/me's floor verifies the same token before its SELECT (issue 23); floor_select, the
# SELECT alone, stays in the table for comparison with earlier runs.
FLOOR_OF = {
    "me": "floor_verify",
    "jwks": "floor_jwks",
    "refresh": "floor_write",
    "login": "hash",
    "floor_login": "hash",
}


def round_ratios(results: dict, hash_times: list[float], name: str, cores: int) -> list[float]:
    """``name``'s req/s over its floor's, round by round: each round of the app against
    the floor measured next to it, under the same load of the shared machine."""
    floor = FLOOR_OF.get(name)
    if floor == "hash":
        floors = [cores / t for t in hash_times]
    elif floor in results:
        floors = [r["rps"] for r in results[floor]]
    else:
        return []
    # Without login among BENCH_ONLY, one hash is timed for the whole run, not per round.
    return [r["rps"] / f for r, f in zip(results[name], floors, strict=False)]


def verdict(ratios: list[float], target: float) -> str:
    """met or MISSED by the median of the per-round ratios, and how many rounds disagree.

    On a shared machine one round can land well above or below the next; a verdict
    that only some rounds support says so instead of reading as settled.
    """
    met = statistics.median(ratios) >= target
    agreeing = sum((ratio >= target) == met for ratio in ratios)
    settled = "met" if met else "MISSED"
    if agreeing == len(ratios):
        return settled
    return f"{settled}, but {'MISSED' if met else 'met'} in {len(ratios) - agreeing} of {len(ratios)} rounds"


def report(results: dict, hash_times: list[float], meta: dict, settings: Settings) -> str:
    """The Markdown report of a run: setup, the table against the floors, the targets."""
    cores = settings.cores
    hash_s = statistics.median(hash_times)
    floors = {
        "me": median(results["floor_verify"], "rps") if "floor_verify" in results else None,
        "jwks": median(results["floor_jwks"], "rps") if "floor_jwks" in results else None,
        "refresh": median(results["floor_write"], "rps") if "floor_write" in results else None,
        "login": cores / hash_s,
        "floor_login": cores / hash_s,
    }
    lines = [
        f"# auth_service benchmark, {meta['when']}",
        "",
        f"Machine: {meta['machine']}; load average at start {meta['load_start']}, "
        f"at end {meta['load_end']} (shared machine: compare ratios, not absolute numbers).",
        f"Server: gunicorn -c gunicorn.conf.py, {meta['server']}, same settings for the "
        "app and the floor app; app in the production config (argon2id "
        f"t={meta['argon2'][0]} m={meta['argon2'][1]} KiB p={meta['argon2'][2]}), "
        f"tokens signed with {meta.get('algorithm', 'ES256')}, "
        "PostgreSQL on 127.0.0.1. **Rate limits off (RATELIMIT_ENABLED=false) for the "
        "benchmark only**; worker recycling off (GUNICORN_MAX_REQUESTS=0).",
        f"Load: wrk -t{settings.connections} -c{settings.connections} -d{settings.seconds}s"
        f"{' with Connection: close (a new connection per request, as nginx sends them)' if settings.close else ' keep-alive'}"
        f", {settings.warmup} s warm-up, {settings.rounds} interleaved rounds, median of rounds; "
        "a ratio is the median of the per-round ratios, each round of the app against the "
        "floor measured next to it. "
        "One argon2id hash as the app computes it (libsodium) and one "
        f"{meta.get('algorithm', 'ES256')} pair signed: {hash_s * 1000:.1f} ms (median; the pair alone "
        f"{meta.get('pair_s', 0) * 1000:.2f} ms), "
        f"login floor = {cores} cores / that time = {floors['login']:.1f} req/s"
        + (
            f" (argon2-cffi's reference code takes {meta['argon2_reference_s'] * 1000:.1f} ms "
            "for the same hash; the floor is timed with the app's hasher)."
            if "argon2_reference_s" in meta
            else "."
        ),
        "",
        "| workload | req/s | p50 ms | p99 ms | errors | worker RSS MiB | floor req/s | ratio to floor | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    targets = {"me": 0.85, "jwks": 0.9, "refresh": 0.7, "login": 0.85}
    hash_floor = median(results["hash_floor"], "rps") if "hash_floor" in results else None
    for name, runs in results.items():
        if name == "hash_floor":
            continue
        rps = median(runs, "rps")
        rss = "/".join(f"{x:.0f}" for x in runs[-1]["rss"])
        errors = sum(r.get("errors", 0) for r in runs)
        floor = floors.get(name)
        ratios = round_ratios(results, hash_times, name, cores)
        ratio = f"{statistics.median(ratios):.2f}" if ratios else ""
        target = (
            f"≥ {targets[name]} {verdict(ratios, targets[name])}"
            if name in targets and ratios
            else ""
        )
        lines.append(
            f"| {settings.labels[name]} | {rps:.1f} | {median(runs, 'p50'):.1f} | "
            f"{median(runs, 'p99'):.1f} | {errors} | {rss} | "
            f"{f'{floor:.1f}' if floor else ''} | {ratio} | {target} |"
        )
    if hash_floor and "login" in results:
        login = median(results["login"], "rps")
        lines += [
            "",
            f"Login against argon2id measured under the same load: {cores} threads "
            f"hashing for {min(settings.seconds, 5)} s in each round gave {hash_floor:.1f} hashes/s "
            f"(the cores / hash time of the moment); login reaches {login / hash_floor:.2f}× "
            f"of that (target ≥ 0.85: {'met' if login / hash_floor >= 0.85 else 'MISSED'}). "
            f"The table's floor, {cores} / {hash_s * 1000:.1f} ms, is one hash and one pair "
            "timed alone.",
        ]
    if "floor_login" in results and "login" in results:
        stack = median(results["floor_login"], "rps")
        lines += [
            "",
            f"A login that does nothing but verify the hash and sign a pair, served the same way "
            f"(bench/floor_app.py POST /login), reaches {stack:.1f} req/s, "
            f"{stack / floors['login']:.2f}× the table's floor; auth_service's login "
            f"reaches {median(results['login'], 'rps') / stack:.2f}× of it.",
        ]
    if "me" in results and "me_under_login" in results:
        alone, loaded = median(results["me"], "p99"), median(results["me_under_login"], "p99")
        logins = median(results["me_under_login"], "login_rps")
        lines += [
            "",
            f"/auth/me p99 alone {alone:.1f} ms, while {settings.login_connections} "
            f"connections log in "
            f"at full speed ({logins:.1f} logins/s) {loaded:.1f} ms: "
            f"{loaded / alone:.2f}× (target ≤ 3×: {'met' if loaded / alone <= 3 else 'MISSED'}).",
        ]
    lines += [
        "",
        "Ratios per round: "
        + "; ".join(
            f"{name} "
            + ", ".join(f"{x:.2f}" for x in round_ratios(results, hash_times, name, cores))
            for name in results
            if round_ratios(results, hash_times, name, cores)
        ),
    ]
    lines += [
        "",
        "Loads (1 min) during the rounds: "
        + "; ".join(
            f"{name} " + ", ".join(r["load"].split()[0] for r in runs)
            for name, runs in results.items()
        ),
    ]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def chart(results: dict, path: Path, hash_times: list[float], settings: Settings) -> None:
    """Bar chart (log scale) of the app's req/s next to its floor's, saved as ``path``."""
    plt = _pyplot()
    labels, app_rps, floor_rps, ratios = [], [], [], []
    for name in ("me", "jwks", "refresh", "login"):
        floor = FLOOR_OF[name]
        if name not in results or (floor != "hash" and floor not in results):
            continue
        labels.append(settings.labels[name].removeprefix("GET /.well-known/"))
        app_rps.append(median(results[name], "rps"))
        floor_rps.append(
            settings.cores / statistics.median(hash_times)
            if floor == "hash"
            else median(results[floor], "rps")
        )
        per_round = round_ratios(results, hash_times, name, settings.cores)
        ratios.append(statistics.median(per_round) if per_round else None)
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], floor_rps, 0.4, label="floor of the stack", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], app_rps, 0.4, label="auth_service", color="#3b6ea5")
    for x, a, ratio in zip(xs, app_rps, ratios, strict=True):
        if ratio:
            ax.text(x + 0.2, a, f"{ratio:.2f}×", ha="center", va="bottom")
    ax.set_xticks(list(xs), labels)
    ax.set_yscale("log")
    ax.set_ylabel("requests/s (log)")
    ax.set_title(
        f"auth_service vs its floor, {settings.cores} cores, median of {settings.rounds} rounds"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def soak_report(samples: list[tuple[float, list[float]]], result: dict, settings: Settings) -> str:
    """The Markdown report of a soak: worker RSS over time and its growth after warm-up."""
    soak_seconds = settings.soak_seconds
    lines = [
        f"# Soak: mixed workload for {soak_seconds} s, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine(settings.cores)}, load {load_average()}. {result['rps']:.1f} req/s, "
        f"p99 {result['p99']:.1f} ms, errors {result.get('errors', 0)}.",
        "",
        "| t s | worker RSS MiB |",
        "|---:|---|",
    ]
    lines += [f"| {t:.0f} | {' / '.join(f'{x:.1f}' for x in rss)} |" for t, rss in samples]
    first = [s for s in samples if s[0] >= min(60, soak_seconds / 3)] or samples
    growth = max(sum(samples[-1][1]) - sum(first[0][1]), 0)
    lines += [
        "",
        f"Total worker RSS after warm-up {sum(first[0][1]):.1f} MiB, at the end "
        f"{sum(samples[-1][1]):.1f} MiB (growth {growth:.1f} MiB).",
    ]
    return "\n".join(lines) + "\n"


def soak_chart(samples: list[tuple[float, list[float]]], path: Path, settings: Settings) -> None:
    """Line chart of each worker's RSS during the soak, saved as ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i in range(max(len(s[1]) for s in samples)):
        ax.plot(
            [t for t, r in samples if len(r) > i],
            [r[i] for t, r in samples if len(r) > i],
            label=f"worker {i + 1}",
        )
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Worker RSS during a {settings.soak_seconds} s mixed soak")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
