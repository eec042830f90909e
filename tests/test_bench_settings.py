"""bench/: one entry point (``python -m bench COMMAND``) and one settings object, read
from the environment once, in bench/settings.py, and handed to the command."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench.settings import WORKLOADS, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]


def test_settings_come_from_the_environment():
    settings = Settings.from_environ(
        {
            "BENCH_SECONDS": "7",
            "BENCH_ROUNDS": "2",
            "BENCH_CONNECTIONS": "4",
            "BENCH_WARMUP": "0",
            "BENCH_CLOSE": "0",
            "BENCH_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/b2",
            "BENCH_ONLY": "me, floor_select",
            "BENCH_FLOOR_APP": "bench.floor_headers:app",
            "BENCH_LOGIN_CONNECTIONS": "3",
            "BENCH_OUTPUT": "try",
            "BENCH_CHART": "1",
            "SOAK": "1",
            "SOAK_SECONDS": "60",
            "SOAK_INTERVAL": "5",
            "BENCH_HASH_SECONDS": "0.5",
            "PROFILE_ALL": "1",
        }
    )
    assert (settings.seconds, settings.rounds, settings.connections, settings.warmup) == (
        7,
        2,
        4,
        0,
    )
    assert settings.close is False
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/b2"
    assert settings.only == ("me", "floor_select")
    assert settings.floor_app == "bench.floor_headers:app"
    assert (settings.login_connections, settings.output, settings.chart) == (3, "try", True)
    assert (settings.soak, settings.soak_seconds, settings.soak_interval) == (True, 60, 5)
    assert (settings.hash_seconds, settings.profile_all) == (0.5, True)


def test_unset_or_blank_variables_keep_the_defaults():
    settings = Settings.from_environ({"BENCH_SECONDS": "", "SOAK": " "})
    assert (settings.seconds, settings.rounds, settings.connections) == (10, 3, 16)
    assert settings.close is True and settings.soak is False
    assert settings.only == tuple(WORKLOADS)
    assert settings.login_connections == settings.cores  # logins on every core by default


def test_a_command_brings_its_own_defaults_and_the_environment_still_wins():
    assert (
        Settings.from_environ({}, rounds=6, seconds=8).rounds,
        Settings.from_environ({"BENCH_ROUNDS": "2"}, rounds=6).rounds,
    ) == (6, 2)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BENCH_SECONDS", "ten", "BENCH_SECONDS must be a number, not 'ten'"),
        ("BENCH_ROUNDS", "-1", "BENCH_ROUNDS must not be negative, not '-1'"),
        ("BENCH_CLOSE", "maybe", "BENCH_CLOSE must be 1 or 0, not 'maybe'"),
        ("BENCH_ONLY", "me,nope", "BENCH_ONLY: unknown workload nope"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(variable, value, message):
    with pytest.raises(SettingsError) as error:
        Settings.from_environ({variable: value})
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert isinstance(error.value, SystemExit)  # exit status 1 from python -m bench


@pytest.mark.parametrize(
    ("argv", "module", "arguments"),
    [
        (["run"], "run", ()),
        (["hash"], "hash_scaling", ()),
        (["ab", "refresh", str(ROOT)], "ab", ("refresh", ROOT)),
        (["profile"], "profile", ("me", 1000)),
        (["profile", "floor_write", "50"], "profile", ("floor_write", 50)),
        (["cpu-split", "login"], "cpu_split", ("login",)),
        (["perf-split", "floor_login", "3"], "perf_split", ("floor_login", 3)),
    ],
)
def test_each_command_gets_the_settings_read_once(monkeypatch, argv, module, arguments):
    calls, reads = [], []
    target = __import__(f"bench.{module}", fromlist=["main"])
    monkeypatch.setattr(target, "main", lambda *args: calls.append(args))
    read = Settings.from_environ.__func__
    monkeypatch.setattr(
        Settings,
        "from_environ",
        classmethod(lambda cls, *a, **k: reads.append(k) or read(cls, *a, **k)),
    )
    monkeypatch.setenv("BENCH_CONNECTIONS", "5")
    monkeypatch.delenv("BENCH_ROUNDS", raising=False)
    cli.main(argv)
    [(settings, *passed)] = calls
    assert len(reads) == 1 and tuple(passed) == arguments
    assert settings.connections == 5
    assert settings.rounds == (6 if module == "ab" else 3)  # ab's own default


def test_login_timing_takes_its_options():
    args = cli.parser().parse_args(["login-timing", "--rounds", "5", "--without-top-up"])
    assert (args.module, args.rounds, args.old_time_cost, args.without_top_up) == (
        "login_timing",
        5,
        2,
        True,
    )


def bench(*argv, **environ):
    return subprocess.run(
        [sys.executable, "-m", "bench", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **environ},
    )


def test_python_m_bench_lists_its_commands():
    result = bench("--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "ab", "hash", "profile", "cpu-split", "perf-split", "login-timing"):
        assert f"    {command}" in result.stdout


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("walk",), "invalid choice: 'walk'"),
        (("ab", "me", "/nonexistent"), "/nonexistent is no checkout of auth_service"),
        (("profile", "me", "0"), "'0' is not a whole number above zero"),
    ],
)
def test_python_m_bench_refuses_bad_arguments(argv, error):
    result = bench(*argv)
    assert result.returncode == 2 and error in result.stderr, result.stderr


def test_python_m_bench_refuses_a_bad_setting_in_one_line():
    result = bench("hash", BENCH_HASH_SECONDS="soon")
    assert (result.returncode, result.stderr) == (
        1,
        "BENCH_HASH_SECONDS must be a number, not 'soon'\n",
    )


def reads_environment(node: ast.AST) -> bool:
    """os.environ[...] read, os.environ.get(...) or os.getenv(...)."""
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return ast.unparse(node.value) == "os.environ"
    if isinstance(node, ast.Call):
        return ast.unparse(node.func) in ("os.environ.get", "os.getenv")
    return False


def test_no_bench_command_reads_the_environment_but_settings_py():
    # floor_app.py is the floor server itself: it reads the environment gunicorn gives it.
    readers = {
        f"{path.name}:{node.lineno}"
        for path in sorted((ROOT / "bench").glob("*.py"))
        if path.name not in ("settings.py", "floor_app.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if reads_environment(node)
    }
    assert not readers
