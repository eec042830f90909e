"""The deployed stack through nginx: the README walkthrough, proxy headers, limits, logs."""

from __future__ import annotations

import json
import re
import shlex
import uuid
from urllib.parse import urlsplit

import pytest

from deploy_stack import ROOT, wait_until
from helpers import claims

REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def readme_walkthrough() -> list[dict]:
    """The curl commands of the README's Walkthrough section, parsed."""
    section = (ROOT / "README.md").read_text().split("## Walkthrough", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    steps = []
    for line in block.splitlines():
        if not line.strip().startswith("curl "):
            continue
        step = {"method": "GET", "headers": {}, "data": None}
        args = iter(shlex.split(line)[1:])
        for arg in args:
            if arg == "-X":
                step["method"] = next(args)
            elif arg == "-H":
                name, _, value = next(args).partition(":")
                step["headers"][name.strip()] = value.strip()
            elif arg == "-d":
                step["data"] = next(args)
            else:
                step["path"] = urlsplit(arg).path
        steps.append(step)
    return steps


def app_log_lines(stack) -> list[dict]:
    """Every JSON line both instances wrote (gunicorn's and the app's)."""
    lines = []
    for app in stack.apps:
        for line in app.log_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def lines_with(stack, request_id: str) -> dict[str, dict]:
    """The log lines about one request, by logger name: gunicorn's access line, which is
    the request line (gunicorn.conf.py sets LOG_REQUESTS=false), and nothing else.

    gunicorn writes its access line once the response has gone out, so it may lag the
    response by a moment: wait (bounded) until it is there.
    """

    def found():
        lines = [line for line in app_log_lines(stack) if line.get("request_id") == request_id]
        return {line["logger"]: line for line in lines} if lines else None

    return wait_until(found, 5, f"log lines of request {request_id}")


def nginx_lines(nginx, request_id: str) -> list[dict]:
    """nginx's access-log lines for one request (written as the response goes out)."""

    def found():
        lines = [json.loads(line) for line in nginx.access_log.read_text().splitlines()]
        return [line for line in lines if line["request_id"] == request_id]

    return wait_until(found, 5, f"nginx log line of request {request_id}")


@pytest.fixture(params=["plain", "edge"])
def frontend(request, stack):
    """Base URL through nginx: plain http (docker-compose.yml) or https (a real host)."""
    return stack.plain.url if request.param == "plain" else stack.edge.https_url


def test_readme_walkthrough_passes_through_nginx(http, frontend, unique):
    steps = readme_walkthrough()
    assert [s["method"] + " " + s["path"] for s in steps] == [
        "POST /auth/signup",
        "POST /auth/login",
        "GET /auth/me",
        "POST /auth/refresh",
        "POST /auth/logout",
    ]
    email, username = unique("user") + "@example.com", unique("testuser")
    tokens: dict[str, str] = {}
    statuses = []
    for step in steps:
        body = (step["data"] or "").replace("user@example.com", email).replace("testuser", username)
        headers = dict(step["headers"])
        for name in ("access_token", "refresh_token"):
            body = body.replace(f"<{name}>", tokens.get(name, ""))
            headers = {k: v.replace(f"<{name}>", tokens.get(name, "")) for k, v in headers.items()}
        response = http.request(
            step["method"],
            frontend + step["path"],
            headers=headers,
            data=body.encode() or None,
            timeout=10,
        )
        statuses.append(response.status_code)
        assert response.headers["Server"] == "nginx"
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        for name in ("access_token", "refresh_token"):
            if name in response.json():
                tokens[name] = response.json()[name]
    assert statuses == [201, 200, 200, 200, 200]
    # The logout ended the session: its refresh token is refused from now on.
    again = http.post(
        frontend + "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=10
    )
    assert (again.status_code, again.json()["error"]) == (401, "token_revoked")


def test_nginx_shows_no_version_and_balances_over_both_instances(http, stack):
    upstreams = set()
    for _ in range(8):
        request_id = uuid.uuid4().hex
        response = http.get(
            stack.plain.url + "/healthz", headers={"X-Request-ID": request_id}, timeout=10
        )
        assert response.status_code == 200
        assert response.headers["Server"] == "nginx"
        upstreams.update(line["upstream"] for line in nginx_lines(stack.plain, request_id))
    assert upstreams == {f"127.0.0.1:{app.port}" for app in stack.apps}


def test_the_app_logs_the_real_client_ip_and_ignores_a_forged_one(http, stack, unique):
    email = unique("ip") + "@example.com"
    http.post(
        stack.plain.url + "/auth/signup",
        timeout=10,
        json={"email": email, "username": unique("ip"), "password": "Password123 ip test"},
    )
    request_id = "forged-xff-" + uuid.uuid4().hex
    login = http.post(
        stack.plain.url + "/auth/login",
        timeout=10,
        json={"email": email, "password": "Password123 ip test"},
        headers={
            "X-Forwarded-For": "203.0.113.66",
            "X-Real-IP": "203.0.113.67",
            "X-Request-ID": request_id,
        },
    )
    assert login.status_code == 200
    # What the app stored with the session and what every log line says: the real address.
    sessions = http.get(
        stack.plain.url + "/auth/active-sessions",
        timeout=10,
        headers={
            "Authorization": "Bearer " + login.json()["access_token"],
            "X-Forwarded-For": "203.0.113.68",
        },
    )
    assert [s["ip_address"] for s in sessions.json()] == ["127.0.0.2"]
    lines = lines_with(stack, request_id)
    assert lines["gunicorn.access"]["client_ip"] == "127.0.0.2"
    # The request line of a login and of an authenticated request name the user.
    user_id = claims(login.json()["access_token"])["sub"]
    assert lines["gunicorn.access"]["user_id"] == int(user_id)
    listed = lines_with(stack, sessions.headers["X-Request-ID"])["gunicorn.access"]
    assert (listed["path"], listed["user_id"]) == ("/auth/active-sessions", int(user_id))
    assert [x["client_ip"] for x in nginx_lines(stack.plain, request_id)] == ["127.0.0.2"]


def test_https_is_seen_only_when_nginx_terminated_tls(http, stack):
    secure = http.get(stack.edge.https_url + "/auth/token-info", timeout=10)
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    # A client claiming https over plain http is not believed (nginx overwrites the header,
    # and blanks the ones gunicorn would also read).
    forged = http.get(
        stack.plain.url + "/auth/token-info",
        timeout=10,
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Ssl": "on",
            "X-Forwarded-Protocol": "ssl",
        },
    )
    assert forged.status_code == 200
    assert "Strict-Transport-Security" not in forged.headers


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_plain_http_on_a_tls_host_is_redirected_keeping_the_method(http, stack, method):
    response = http.request(
        method, stack.edge.url + "/auth/me?x=1", allow_redirects=False, timeout=10
    )
    assert response.status_code == 308
    assert response.headers["Location"] == stack.edge.https_url + "/auth/me?x=1"


def test_an_oversized_body_is_refused_with_413_json(http, frontend):
    body = json.dumps({"email": "big@example.com", "password": "x" * 100_000})
    response = http.post(
        frontend + "/auth/login",
        data=body,
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "payload_too_large"
    assert response.json()["code"] == 413


def test_the_request_id_is_passed_through_or_made_by_nginx(http, stack):
    given = http.get(
        stack.plain.url + "/healthz", headers={"X-Request-ID": "client-trace-1"}, timeout=10
    )
    assert given.headers["X-Request-ID"] == "client-trace-1"
    made = http.get(stack.plain.url + "/healthz", timeout=10).headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(made)
    # nginx's id is the one every layer logged, in one request line (gunicorn's).
    assert set(lines_with(stack, made)) == {"gunicorn.access"}
    assert nginx_lines(stack.plain, made)[0]["status"] == 200


@pytest.mark.parametrize("bad", ["x" * 129, "two words", "caf\u00e9"])
def test_nginx_and_the_app_agree_on_a_replaced_request_id(http, stack, bad):
    """An id the app would refuse is replaced by nginx, and the app keeps nginx's: the
    response, nginx's line and gunicorn's carry the same one."""
    answer = http.get(
        stack.plain.url + "/healthz", headers={"X-Request-ID": bad.encode()}, timeout=10
    )
    replaced = answer.headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(replaced)
    assert set(lines_with(stack, replaced)) == {"gunicorn.access"}
    assert nginx_lines(stack.plain, replaced)[0]["status"] == 200


def test_the_longest_id_the_app_accepts_passes_nginx_unchanged(http, stack):
    longest = "!" + "~" * 127
    answer = http.get(stack.plain.url + "/healthz", headers={"X-Request-ID": longest}, timeout=10)
    assert answer.headers["X-Request-ID"] == longest
    assert nginx_lines(stack.plain, longest)[0]["status"] == 200


def test_a_refresh_token_rotated_on_one_instance_is_spent_on_the_other(http, direct, stack, unique):
    a, b = stack.apps
    email = unique("rotate") + "@example.com"
    http.post(
        stack.plain.url + "/auth/signup",
        timeout=10,
        json={"email": email, "username": unique("rotate"), "password": "Password123 rotate"},
    )
    login = http.post(
        stack.plain.url + "/auth/login",
        timeout=10,
        json={"email": email, "password": "Password123 rotate"},
    ).json()
    rotated = direct.post(
        a.url + "/auth/refresh", json={"refresh_token": login["refresh_token"]}, timeout=10
    )
    assert rotated.status_code == 200
    replayed = direct.post(
        b.url + "/auth/refresh", json={"refresh_token": login["refresh_token"]}, timeout=10
    )
    assert (replayed.status_code, replayed.json()["error"]) == (401, "token_reused")
    # Reuse revoked the whole session, on every instance.
    for app in (a, b):
        child = direct.post(
            app.url + "/auth/refresh",
            timeout=10,
            json={"refresh_token": rotated.json()["refresh_token"]},
        )
        assert (child.status_code, child.json()["error"]) == (401, "token_revoked")


def test_rate_limit_counters_are_shared_by_both_instances(direct, stack, unique):
    a, b = stack.apps
    wrong = {"email": unique("limited") + "@example.com", "password": "not the password"}
    # RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP is 5 per minute: alternating instances, each
    # sees only 3 of them, so only shared counters can refuse the sixth.
    statuses = [
        direct.post(app.url + "/auth/login", json=wrong, timeout=10).status_code
        for app in (a, b, a, b, a)
    ]
    assert statuses == [401] * 5
    for app in (b, a):
        refused = direct.post(app.url + "/auth/login", json=wrong, timeout=10)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
    client = stack.redis.client()
    try:
        prefix = stack.apps[0].environ["RATELIMIT_KEY_PREFIX"]
        assert any(prefix.encode() in key for key in client.scan_iter(count=1000))
    finally:
        client.close()


def test_no_token_or_password_reaches_any_log(http, stack, unique):
    email, password = unique("secret") + "@example.com", "Password123 " + uuid.uuid4().hex
    http.post(
        stack.plain.url + "/auth/signup",
        timeout=10,
        json={"email": email, "username": unique("secret"), "password": password},
    )
    tokens = http.post(
        stack.plain.url + "/auth/login", timeout=10, json={"email": email, "password": password}
    ).json()
    http.get(
        stack.plain.url + "/auth/me?access_token=" + tokens["access_token"],
        timeout=10,
        headers={
            "Authorization": "Bearer " + tokens["access_token"],
            "Cookie": "refresh_token_cookie=" + tokens["refresh_token"],
        },
    )
    http.post(
        stack.plain.url + "/auth/refresh",
        json={"refresh_token": tokens["refresh_token"]},
        timeout=10,
    )
    logs = [app.log_text() for app in stack.apps]
    logs += [nginx.access_log.read_text() for nginx in (stack.plain, stack.edge)]
    for text in logs:
        for secret in (
            password,
            tokens["access_token"],
            tokens["refresh_token"],
            tokens["access_token"].split(".")[2],
        ):
            assert secret not in text
    # Every line the instances write while serving is JSON (alembic's migration lines are
    # written by `flask db upgrade` before gunicorn starts).
    for text in logs[:2]:
        serving = text[text.index('"Starting gunicorn') :].splitlines()[1:]
        assert all(line.startswith("{") for line in serving), serving
