"""examples/resource_server/ as a separate process against auth_service under gunicorn:
it verifies access tokens knowing only the JWKS URL, issuer and audience, and a key
rotation performed while it runs never makes it refuse a valid token."""

from __future__ import annotations

import base64
import subprocess
import sys
import time

import jwt
import pytest
import requests

from issuer import MAX_AGE, REFRESH, forged, login, verifier_env
from servers import ROOT, flask, free_port


@pytest.fixture(scope="module")
def resource_server(service, tmp_path_factory):
    port = free_port()
    env = verifier_env(service) | {"PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "resource_server" / "app.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/hello", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


def hello(resource_server, token: str) -> requests.Response:
    return requests.get(
        f"{resource_server}/hello", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_a_valid_access_token_is_accepted(service, resource_server):
    response = hello(resource_server, login(service)["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["hello"] == "1"


@pytest.mark.parametrize(
    "make",
    [
        lambda s: forged(s, exp=int(time.time()) - 60),
        lambda s: forged(s, aud="another-api"),
        lambda s: forged(s, iss="https://elsewhere.example"),
        lambda s: login(s)["refresh_token"],
        lambda s: (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"))(
            login(s)["access_token"]
        ),
        lambda s: (
            lambda p: ".".join(
                [p[0], base64.urlsafe_b64encode(b'{"sub":"2"}').decode().rstrip("="), p[2]]
            )
        )(login(s)["access_token"].split(".")),
    ],
    ids=["expired", "wrong-aud", "wrong-iss", "refresh-token", "bad-signature", "tampered"],
)
def test_anything_else_is_refused(service, resource_server, make):
    assert hello(resource_server, make(service)).status_code == 401


def test_a_rotation_while_it_runs_never_refuses_a_valid_token(service, resource_server):
    first_kid = jwt.get_unverified_header(login(service)["access_token"])["kid"]
    flask(service.env, "keys", "rotate")
    statuses, kids = [], set()
    deadline = time.monotonic() + MAX_AGE + 3 * REFRESH + 2
    while time.monotonic() < deadline:
        token = login(service)["access_token"]
        kids.add(jwt.get_unverified_header(token)["kid"])
        statuses.append(hello(resource_server, token).status_code)
        time.sleep(0.05)
    assert len(kids) == 2 and first_kid in kids, "the rotation did not complete"
    assert set(statuses) == {200}


def test_a_token_of_a_revoked_key_is_refused_once_the_jwks_cache_expires(service, resource_server):
    token = login(service)["access_token"]
    assert hello(resource_server, token).status_code == 200
    flask(service.env, "keys", "revoke", "--yes", "--", jwt.get_unverified_header(token)["kid"])
    deadline = time.monotonic() + MAX_AGE + REFRESH + 5
    status = 200
    while time.monotonic() < deadline and status == 200:
        time.sleep(0.2)
        status = hello(resource_server, token).status_code
    assert status == 401
    assert hello(resource_server, login(service)["access_token"]).status_code == 200
