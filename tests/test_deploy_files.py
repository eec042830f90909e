"""The deployment files, checked statically (no Docker engine here; tests/integration runs
the same pieces for real): docker-compose.yml, Dockerfile, pgadmin/servers.json,
deploy/ (nginx templates, entrypoint), gunicorn.conf.py, and their documentation."""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from gunicorn.config import Config as GunicornConfig

from helpers import configuration_generator, unavailable

ROOT = Path(__file__).resolve().parents[1]
NGINX_PLACEHOLDER = re.compile(r"\$\{(NGX_[A-Z0-9_]+)\}")
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


@pytest.fixture(autouse=True)
def clean_db():
    """No database here (overrides the suite's per-test cleanup)."""
    yield


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# --- docker-compose.yml ---------------------------------------------------------------


def test_compose_has_the_whole_topology(services, compose):
    assert set(services) == {"postgres", "redis", "app1", "app2", "nginx", "pgadmin"}
    assert set(compose["volumes"]) == {"pgdata", "pgadmin"}


@pytest.mark.parametrize(
    "name, probe",
    [
        ("postgres", "pg_isready"),
        ("redis", "redis-cli"),
        ("app1", "/healthz"),
        ("app2", "/healthz"),
        ("nginx", "/healthz"),
    ],
)
def test_every_service_others_wait_for_has_a_healthcheck(services, name, probe):
    check = services[name]["healthcheck"]
    assert probe in " ".join(check["test"])
    assert {"interval", "timeout", "retries"} <= check.keys()


def test_postgres_keeps_its_data_in_a_named_volume(services):
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]


def test_app_instances_are_wired_to_postgres_redis_and_nginx(services):
    postgres = environment(services["postgres"])
    for name in ("app1", "app2"):
        app = services[name]
        env = environment(app)
        assert app["build"] == "."
        assert "ports" not in app, "only nginx may reach the app (it trusts X-Forwarded-*)"
        assert env["APP_ENV"] == "production"
        assert env["TRUSTED_PROXIES"] == "1"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["GUNICORN_BIND"] == "0.0.0.0:8000"
        url = env["DATABASE_URL"]
        assert url.startswith(f"postgresql://{postgres['POSTGRES_USER']}:")
        assert url.endswith(f"@postgres:5432/{postgres['POSTGRES_DB']}")
        assert (
            "${POSTGRES_PASSWORD" in url and "${POSTGRES_PASSWORD" in postgres["POSTGRES_PASSWORD"]
        )
        # Secrets come from the operator, required, never defaulted.
        for key in ("SECRET_KEY", "JWT_SECRET_KEY", "KEY_ENCRYPTION_KEY"):
            assert env[key].startswith("${" + key + ":?")


def test_services_start_in_dependency_order(services):
    def waits_for(name):
        return {dep: cond["condition"] for dep, cond in services[name]["depends_on"].items()}

    assert waits_for("app1") == {"postgres": "service_healthy", "redis": "service_healthy"}
    # app1 migrates; app2 starts once app1 is healthy, and never migrates itself.
    assert waits_for("app2") == {"app1": "service_healthy", "redis": "service_healthy"}
    assert environment(services["app2"])["RUN_MIGRATIONS"] == "false"
    assert "RUN_MIGRATIONS" not in environment(services["app1"])
    assert waits_for("nginx") == {"app1": "service_healthy", "app2": "service_healthy"}
    assert waits_for("pgadmin") == {"postgres": "service_healthy"}


def test_nginx_serves_8080_from_the_one_template(services):
    nginx = services["nginx"]
    assert nginx["ports"] == ["127.0.0.1:8080:80"]
    assert "./deploy/nginx.conf:/etc/nginx/templates/default.conf.template:ro" in nginx["volumes"]
    env = environment(nginx)
    template = (ROOT / "deploy" / "nginx.conf").read_text()
    assert set(NGINX_PLACEHOLDER.findall(template)) <= env.keys()
    # The image substitutes only variables whose name matches (awk's ~): never nginx's own.
    names = [*NGINX_PLACEHOLDER.findall(template), "NGINX_VERSION", "HOSTNAME", "PATH"]
    assert [
        n for n in names if re.search(env["NGINX_ENVSUBST_FILTER"], n)
    ] == NGINX_PLACEHOLDER.findall(template)
    assert env["NGX_LISTEN"] == "80"
    # The upstream names both app services at the port they bind.
    assert {env["NGX_APP_1"], env["NGX_APP_2"]} == {"app1:8000", "app2:8000"}


def test_pgadmin_on_5050_with_the_preconfigured_server(services):
    pgadmin = services["pgadmin"]
    env = environment(pgadmin)
    assert pgadmin["ports"] == ["127.0.0.1:5050:80"]
    assert env["PGADMIN_DEFAULT_EMAIL"] == "${PGADMIN_DEFAULT_EMAIL:-admin@admin.com}"
    assert env["PGADMIN_DEFAULT_PASSWORD"] == "${PGADMIN_DEFAULT_PASSWORD:-admin}"
    mount = f"./pgadmin/servers.json:{env['PGADMIN_SERVER_JSON_FILE']}:ro"
    assert mount in pgadmin["volumes"]


def test_every_compose_variable_is_in_env_example():
    used = set(COMPOSE_VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    assert used >= {
        "SECRET_KEY",
        "JWT_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "PGADMIN_DEFAULT_EMAIL",
        "PGADMIN_DEFAULT_PASSWORD",
    }
    assert used <= env_example_names()


def compose_command() -> list[str] | None:
    """``docker compose`` (v2 plugin) or ``docker-compose`` (v1), if either is installed."""
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def _compose_config(command, project: Path, env: dict) -> subprocess.CompletedProcess:
    """``config`` of docker-compose.yml in ``project`` (its .env), no shell variable but
    ``env``'s."""
    empty_env = project / "empty.env"
    empty_env.write_text("")
    return subprocess.run(
        [
            *command,
            "--env-file",
            str(empty_env),
            "--project-directory",
            str(project),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(project), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_passes_docker_compose_config(tmp_path):
    """Compose's own validation (needs no engine), where a compose client is installed:
    the Compose Specification's schema (docker compose v2, or docker-compose 1.27+)."""
    command = compose_command()
    if command is None:
        unavailable(
            "no docker compose client here; the YAML checks above still ran",
            ".ci/run installs docker-compose",
        )
    # .env as a newcomer has it: .env.example with a few settings of their own.
    (tmp_path / ".env").write_text(
        (ROOT / ".env.example").read_text()
        + "PUBLIC_BASE_URL=https://auth.example.com\nMAIL_BACKEND=smtp\n"
        + "GOOGLE_CLIENT_ID=id-from-env\nCORS_ORIGINS=https://app.example.com\n"
    )
    secrets = {"SECRET_KEY": "s" * 48, "JWT_SECRET_KEY": "j" * 48, "KEY_ENCRYPTION_KEY": "k" * 44}
    result = _compose_config(command, tmp_path, secrets)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("app1", "app2"):
        env = services[name]["environment"]
        # .env reaches the apps...
        assert env["PUBLIC_BASE_URL"] == "https://auth.example.com"
        assert (env["MAIL_BACKEND"], env["GOOGLE_CLIENT_ID"]) == ("smtp", "id-from-env")
        assert env["CORS_ORIGINS"] == "https://app.example.com"
        # ...and the compose-specific values win over what it says for make run.
        assert (env["APP_ENV"], env["TRUSTED_PROXIES"]) == ("production", "1")
        assert env["DATABASE_URL"].endswith("@postgres:5432/auth_service")
        assert env["SECRET_KEY"] == "s" * 48
    # Without the secrets it refuses to start, saying what to set.
    refused = _compose_config(command, tmp_path, {})
    assert refused.returncode != 0 and "set SECRET_KEY in .env" in refused.stderr


PINNED_IMAGE = re.compile(r"([^:@]+)(?::(\d+(?:\.\d+)+)[-\w.]*|@sha256:[0-9a-f]{64})")
# Their releases are numbered major.minor: 15.13 is one exact release.
TWO_PART_RELEASES = {"postgres", "dpage/pgadmin4"}


def test_every_image_is_pinned_to_an_exact_version(services, dockerfile):
    images = [s["image"] for n, s in services.items() if "build" not in s]
    images += [args.split()[0] for instruction, args in dockerfile if instruction == "FROM"]
    assert len(images) == 6
    for image in images:
        pinned = PINNED_IMAGE.fullmatch(image)
        assert pinned, f"{image}: pin an exact version or a digest"
        name, version = pinned.groups()
        if version is not None:
            parts = 2 if name in TWO_PART_RELEASES else 3
            assert version.count(".") + 1 >= parts, f"{image}: pin the exact release"


def test_every_service_is_hardened_where_its_image_allows(services):
    for name, service in services.items():
        if name == "pgadmin":  # binds port 80 through a file capability (see the file)
            continue
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["cap_drop"] == ["ALL"], name
    for name in ("app1", "app2", "redis", "nginx"):
        assert services[name]["read_only"] is True, name
    assert "cap_add" not in services["app1"] and "cap_add" not in services["redis"]


def test_apps_get_env_file_with_compose_values_on_top(services):
    for name in ("app1", "app2"):
        assert services[name]["env_file"] == ".env"


def test_pgadmin_has_a_healthcheck(services):
    check = services["pgadmin"]["healthcheck"]
    assert "/misc/ping" in " ".join(check["test"])


# --- pgadmin/servers.json -------------------------------------------------------------


def test_servers_json_has_the_shape_pgadmin_imports(services):
    document = json.loads((ROOT / "pgadmin" / "servers.json").read_text())
    assert set(document) == {"Servers"}
    assert all(key.isdigit() for key in document["Servers"])
    server = document["Servers"]["1"]
    required = {"Name", "Group", "Host", "Port", "MaintenanceDB", "Username", "SSLMode"}
    assert required <= server.keys()
    assert "Password" not in server  # pgAdmin never imports one; it is asked on first connect
    postgres = environment(services["postgres"])
    assert server["Name"] == "auth_service DB"
    assert server["Host"] == "postgres" and isinstance(server["Port"], int)
    assert server["Port"] == 5432
    assert server["MaintenanceDB"] == postgres["POSTGRES_DB"]
    assert server["Username"] == postgres["POSTGRES_USER"]
    assert server["SSLMode"] in {
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    }


# --- Dockerfile -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def final_stage(dockerfile):
    last_from = max(i for i, (op, _) in enumerate(dockerfile) if op == "FROM")
    return dockerfile[last_from:]


def test_dockerfile_is_multi_stage_and_slim(dockerfile):
    stages = [args for op, args in dockerfile if op == "FROM"]
    assert len(stages) >= 2
    assert all("slim" in stage for stage in stages)
    assert any("--from=build" in args for op, args in final_stage(dockerfile) if op == "COPY")


def test_dockerfile_runs_as_a_non_root_user(dockerfile):
    users = [args for op, args in final_stage(dockerfile) if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # Nothing after USER switches back.
    assert [op for op, _ in final_stage(dockerfile)].index("USER") > max(
        i for i, (op, _) in enumerate(final_stage(dockerfile)) if op in ("RUN", "COPY")
    )


def test_dockerfile_bakes_in_no_secret(dockerfile):
    for op, args in dockerfile:
        if op in ("ENV", "ARG"):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|KEY", args, re.I), args
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_dockerfile_checks_health_and_starts_through_the_entrypoint(dockerfile):
    final = dict(final_stage(dockerfile))
    assert final["HEALTHCHECK"].startswith("--interval=")
    assert "/healthz" in final["HEALTHCHECK"]
    assert json.loads(final["ENTRYPOINT"]) == ["/app/deploy/docker-entrypoint.sh"]
    assert json.loads(final["CMD"]) == ["gunicorn", "--config", "gunicorn.conf.py"]


def test_everything_the_dockerfile_copies_exists_and_is_not_ignored(dockerfile):
    ignored = (ROOT / ".dockerignore").read_text().split()
    for op, args in dockerfile:
        if op == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source.split("/")[0] not in ignored, source
    assert os.access(ROOT / "deploy" / "docker-entrypoint.sh", os.X_OK)


# --- deploy/docker-entrypoint.sh ------------------------------------------------------


def run_entrypoint(tmp_path, *command, **environ):
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "APP_ENV": "production",
        **environ,
    }
    return subprocess.run(
        ["sh", str(ROOT / "deploy" / "docker-entrypoint.sh"), *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entrypoint_waits_for_the_database_then_runs_the_command(tmp_path):
    result = run_entrypoint(
        tmp_path, "sh", "-c", "echo ran $0", "it", DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}"
    )
    assert (result.returncode, result.stdout) == (0, "ran it\n"), result.stderr


def test_entrypoint_gives_up_on_an_unreachable_database_without_leaking_the_url(tmp_path):
    result = run_entrypoint(
        tmp_path,
        "true",
        DB_WAIT_TIMEOUT="1",
        DATABASE_URL="postgresql://auth:hunter2-secret@127.0.0.1:1/db",
    )
    assert result.returncode == 1
    assert "database unreachable after 1s (OperationalError)" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


# --- deploy/nginx.conf and deploy/nginx-tls.conf --------------------------------------


@pytest.mark.parametrize("name", ["nginx.conf", "nginx-tls.conf"])
def test_nginx_templates_use_braces_only_for_their_placeholders(name):
    text = (ROOT / "deploy" / name).read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert re.findall(r"\$\{([^}]*)\}", code) == NGINX_PLACEHOLDER.findall(code)
    assert NGINX_PLACEHOLDER.findall(code)


def test_nginx_template_has_what_production_needs():
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    for directive in (
        "server_tokens off;",
        "client_max_body_size 64k;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_read_timeout",
        "proxy_connect_timeout",
        "server ${NGX_APP_1}",
        "server ${NGX_APP_2}",
        "include ${NGX_TLS_DIR}/*.conf;",
    ):
        assert directive in text
    assert "$request_uri" not in text.split("log_format", 1)[1].split(";", 1)[0]
    tls = (ROOT / "deploy" / "nginx-tls.conf").read_text()
    assert "listen ${NGX_TLS_LISTEN} ssl;" in tls and "TLSv1.2 TLSv1.3" in tls


# --- gunicorn.conf.py -----------------------------------------------------------------


def load_gunicorn_conf(monkeypatch, **environ) -> GunicornConfig:
    """gunicorn.conf.py read with ``environ`` and validated by gunicorn itself."""
    for key in list(os.environ):
        if key.startswith("GUNICORN_") or key in (
            "PORT",
            "WEB_CONCURRENCY",
            "TRUSTED_PROXIES",
            "FORWARDED_ALLOW_IPS",
            "LOG_LEVEL",
        ):
            monkeypatch.delenv(key)
    # The file sets LOG_REQUESTS and ARGON2_CONCURRENCY for the app it serves: undone
    # after the test.
    for key in ("LOG_REQUESTS", "ARGON2_CONCURRENCY"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    namespace = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    config = GunicornConfig()
    for key, value in namespace.items():
        if key in config.settings:
            config.set(key, value)
    return config


def test_gunicorn_defaults_are_safe_and_sized_from_the_cores(monkeypatch):
    config = load_gunicorn_conf(monkeypatch)
    cores = len(os.sched_getaffinity(0))
    assert config.bind == ["127.0.0.1:8000"]
    assert (config.worker_class_str, config.threads) == ("gthread", 4)
    assert config.workers == max(2, cores)
    assert (config.timeout, config.graceful_timeout) == (30, 30)
    assert config.accesslog == "-"
    assert config.preload_app is True
    assert config.control_socket_disable is True
    # No proxy configured: no forwarded header is believed, from anyone.
    assert config.forwarded_allow_ips == []
    assert config.secure_scheme_headers == {}
    assert config.wsgi_app == "wsgi:app"


def test_gunicorn_reads_its_settings_from_the_environment(monkeypatch):
    config = load_gunicorn_conf(
        monkeypatch,
        GUNICORN_BIND="0.0.0.0:9000, unix:/tmp/auth.sock",
        WEB_CONCURRENCY="3",
        GUNICORN_WORKER_CLASS="gthread",
        GUNICORN_THREADS="4",
        GUNICORN_TIMEOUT="20",
        GUNICORN_GRACEFUL_TIMEOUT="10",
        GUNICORN_MAX_REQUESTS="0",
        GUNICORN_PRELOAD="false",
        TRUSTED_PROXIES="1",
        FORWARDED_ALLOW_IPS="10.0.0.5,10.0.1.0/24",
    )
    assert config.bind == ["0.0.0.0:9000", "unix:/tmp/auth.sock"]
    assert (config.workers, config.threads, config.worker_class_str) == (3, 4, "gthread")
    assert (config.timeout, config.graceful_timeout, config.max_requests) == (20, 10, 0)
    assert config.preload_app is False
    assert config.forwarded_allow_ips == ["10.0.0.5", "10.0.1.0/24"]
    assert config.secure_scheme_headers == {"X-FORWARDED-PROTO": "https"}


@pytest.mark.parametrize(("given", "app_sees"), [(None, "false"), ("true", "true")])
def test_gunicorn_makes_its_access_line_the_request_line(monkeypatch, given, app_sees):
    load_gunicorn_conf(monkeypatch, **({"LOG_REQUESTS": given} if given else {}))
    assert os.environ["LOG_REQUESTS"] == app_sees


@pytest.mark.parametrize("workers", [None, "1", "64"])
def test_gunicorn_gives_each_worker_its_share_of_the_cores_for_hashing(monkeypatch, workers):
    config = load_gunicorn_conf(monkeypatch, **({"WEB_CONCURRENCY": workers} if workers else {}))
    cores = len(os.sched_getaffinity(0))
    assert os.environ["ARGON2_CONCURRENCY"] == str(max(1, cores // config.workers))


def test_gunicorn_keeps_the_operators_hashing_concurrency(monkeypatch):
    load_gunicorn_conf(monkeypatch, ARGON2_CONCURRENCY="3")
    assert os.environ["ARGON2_CONCURRENCY"] == "3"


def test_gunicorn_binds_to_port_on_loopback(monkeypatch):
    assert load_gunicorn_conf(monkeypatch, PORT="9100").bind == ["127.0.0.1:9100"]


def test_gunicorn_access_line_is_json_without_secrets(monkeypatch, capsys):
    config = load_gunicorn_conf(monkeypatch)
    logger = config.logger_class(config)
    logger.access(
        SimpleNamespace(
            status="401 UNAUTHORIZED",
            sent=97,
            headers=[("Content-Type", "application/json"), ("X-Request-ID", "rid-1")],
        ),
        SimpleNamespace(headers=[("AUTHORIZATION", "Bearer tok.en.secret")]),
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/auth/me",
            "RAW_URI": "/auth/me?access_token=qs",
            "QUERY_STRING": "access_token=qs-secret",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "203.0.113.9",
            "HTTP_AUTHORIZATION": "Bearer tok.en.secret",
            "HTTP_COOKIE": "refresh_token_cookie=cookie-secret",
            "HTTP_USER_AGENT": "curl/8",
            "auth_service.user_id": 7,
        },
        timedelta(milliseconds=12, microseconds=500),
    )
    line = capsys.readouterr().out.strip()
    entry = json.loads(line)
    assert entry | {"ts": None, "pid": None} == {
        "ts": None,
        "level": "INFO",
        "logger": "gunicorn.access",
        "method": "GET",
        "path": "/auth/me",
        "status": 401,
        "bytes": 97,
        "duration_ms": 12.5,
        "request_id": "rid-1",
        "user_id": 7,
        "client_ip": "203.0.113.9",
        "user_agent": "curl/8",
        "pid": None,
    }
    assert "secret" not in line


# --- documentation --------------------------------------------------------------------


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M))


def deployment_variables() -> set[str]:
    """Every variable gunicorn.conf.py, the entrypoint and the compose file read."""
    conf = (ROOT / "gunicorn.conf.py").read_text()
    names = set(
        re.findall(
            r"""(?:_int\(|_bool\(|os\.environ\.get\(|os\.environ\[)["']([A-Z_]+)["']""", conf
        )
    )
    entrypoint = (ROOT / "deploy" / "docker-entrypoint.sh").read_text()
    names |= set(re.findall(r"\$\{([A-Z_]+):-", entrypoint))
    names |= set(re.findall(r'environ\.get\("([A-Z_]+)"', entrypoint))
    names |= set(COMPOSE_VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    return names | {"LOG_JSON"}


def documented_variables() -> set[str]:
    """The names in the first column of docs/configuration.md's and docs/deployment.md's
    tables."""
    return {
        name
        for page in ("configuration.md", "deployment.md")
        for name in re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / page).read_text(), re.M)
    }


def test_deployment_variables_are_documented():
    names = deployment_variables()
    assert {
        "GUNICORN_BIND",
        "WEB_CONCURRENCY",
        "GUNICORN_THREADS",
        "GUNICORN_TIMEOUT",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "DB_WAIT_TIMEOUT",
        "RUN_MIGRATIONS",
        "FORWARDED_ALLOW_IPS",
    } <= names
    assert not names - env_example_names(), "missing from .env.example"
    assert not names - documented_variables(), "missing from docs/deployment.md"


def test_env_example_lists_exactly_the_variables_that_are_read():
    """.env.example names every variable config.py reads and every deployment variable,
    and nothing that nothing reads."""
    read = configuration_generator().environment_variables() | deployment_variables()
    assert {"SECRET_KEY", "PORT", "TEST_DATABASE_URL", "MAIL_TIMEOUT"} <= read
    assert not read - env_example_names(), "missing from .env.example"
    assert not env_example_names() - read, "read by nothing, yet in .env.example"


def test_every_variable_that_is_read_is_documented():
    read = configuration_generator().environment_variables() | deployment_variables()
    assert not read - documented_variables(), "missing from docs/"
