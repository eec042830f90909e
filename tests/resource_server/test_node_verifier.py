"""examples/resource_server_node/ (Node's jose) verifies the same tokens as the Python
example, against the JWKS of auth_service under gunicorn: a second implementation that
reads our tokens and keys as the standards say, not as PyJWT happens to. ``make
test-node`` installs jose (npm ci, pinned in package-lock.json) and runs this file."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time

import pytest

from helpers import claims, unavailable
from issuer import forged, login, verifier_env
from servers import ROOT

EXAMPLE = ROOT / "examples" / "resource_server_node"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (EXAMPLE / "node_modules" / "jose").is_dir():
        unavailable(
            "node or jose is not installed in examples/resource_server_node",
            "make test-node runs npm ci",
        )
    return found


def verify(node: str, service, *tokens: str) -> list[dict]:
    """What verify.mjs says of each token, in one run."""
    done = subprocess.run(
        [node, "verify.mjs"],
        cwd=EXAMPLE,
        env=verifier_env(service),
        input="\n".join(tokens) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_jose_accepts_an_access_token(node, service):
    token = login(service)["access_token"]
    (verdict,) = verify(node, service, token)
    assert verdict == {"valid": True, "sub": claims(token)["sub"], "sid": claims(token)["sid"]}


def test_jose_refuses_anything_else(node, service):
    tokens = login(service)
    header, payload, signature = tokens["access_token"].split(".")
    other_payload = base64.urlsafe_b64encode(b'{"sub":"2"}').decode().rstrip("=")
    refused = {
        "expired": forged(service, exp=int(time.time()) - 60),
        "wrong-aud": forged(service, aud="another-api"),
        "wrong-iss": forged(service, iss="https://elsewhere.example"),
        "refresh-token": tokens["refresh_token"],
        "tampered": ".".join([header, other_payload, signature]),
        "bad-signature": ".".join([header, payload, signature[::-1]]),
    }
    verdicts = dict(zip(refused, verify(node, service, *refused.values()), strict=True))
    assert {name: verdict["valid"] for name, verdict in verdicts.items()} == dict.fromkeys(
        refused, False
    )
    assert verdicts["expired"]["code"] == "ERR_JWT_EXPIRED"
    assert verdicts["wrong-aud"]["code"] == "ERR_JWT_CLAIM_VALIDATION_FAILED"
    assert verdicts["refresh-token"]["code"] == "ERR_JWT_CLAIM_VALIDATION_FAILED"  # typ
    assert verdicts["bad-signature"]["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"
