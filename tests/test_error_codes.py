"""Error codes live in one table (auth_service/error_codes.py): unique, snake_case, named
by every raise, listed in docs/api.md, and the source of the RFC 6750 challenge."""

from __future__ import annotations

import ast
import re
from collections import Counter
from datetime import timedelta

import pytest
from freezegun import freeze_time

from auth_service.error_codes import Error
from helpers import (
    LOGIN_TIME,
    ROOT,
    WRONG_PASSWORD,
    assert_error,
    bearer,
    docs_script,
    login,
    me,
    refresh,
)

PACKAGE = ROOT / "auth_service"
TABLE = PACKAGE / "error_codes.py"
REALM = 'Bearer realm="auth_service"'


def test_every_code_is_snake_case():
    for member in Error:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", member.code), member


def test_a_code_names_one_error():
    # One code for one error; invalid_token and token_expired name it for a bearer token
    # (401, with the challenge) and for an emailed link (400), and for nothing else.
    assert all(n == 1 for n in Counter((m.code, m.bearer_error) for m in Error).values())
    shared = [code for code, n in Counter(m.code for m in Error).items() if n > 1]
    for code in shared:
        statuses = {(m.status, m.bearer_error) for m in Error if m.code == code}
        assert statuses == {(401, "invalid_token"), (400, None)}, code


def test_only_refused_bearer_tokens_name_an_rfc_6750_error():
    for member in Error:
        assert member.bearer_error in (None, "invalid_token"), member
        assert member.bearer_error is None or member.status == 401, member


def spelled_codes(source: str) -> list[tuple[int, str]]:
    """(line, code) of every string constant in ``source`` that is an error code."""
    codes = {member.code for member in Error}
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in codes
    ]


def test_the_scan_finds_a_spelled_code():
    source = 'raise APIError(401, "token_revoked", "The token has been revoked.")\n'
    assert spelled_codes(source) == [(1, "token_revoked")]
    assert spelled_codes("raise APIError(Error.TOKEN_REVOKED)\n") == []


def test_no_code_is_spelled_outside_the_table():
    found = {
        f"{path.relative_to(ROOT)}:{line}": code
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != TABLE
        for line, code in spelled_codes(path.read_text(encoding="utf-8"))
    }
    assert found == {}, "name the member of auth_service/error_codes.py instead"


def test_api_docs_list_the_table():
    generator = docs_script("generate_error_codes")
    page = generator.PAGE.read_text(encoding="utf-8")
    assert page == generator.rendered_page(page), "docs/api.md is stale: run make docs"
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", page, flags=re.MULTILINE)
    assert sorted(rows) == sorted((str(m.status), m.code) for m in Error)


# --- the challenge of a 401 comes from the table ----------------------------------------


def challenge(description: str) -> str:
    return f'{REALM}, error="invalid_token", error_description="{description}"'


def test_an_expired_token_is_refused_with_the_invalid_token_challenge(client, auth):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        access = auth.login().json["access_token"]
        frozen.move_to(LOGIN_TIME + timedelta(minutes=15))
        response = me(client, access)
    assert_error(response, 401, "token_expired")
    assert response.headers["WWW-Authenticate"] == challenge("The token has expired.")


def test_a_revoked_token_is_refused_with_the_invalid_token_challenge(client, alice_tokens):
    access = alice_tokens["access_token"]
    assert client.post("/auth/logout-all", headers=bearer(access)).status_code == 200
    response = me(client, access)
    assert_error(response, 401, "token_revoked")
    assert response.headers["WWW-Authenticate"] == challenge("The token has been revoked.")


def test_a_reused_refresh_token_is_refused_with_the_invalid_token_challenge(client, auth):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        parent = auth.login().json["refresh_token"]
        assert refresh(client, parent).status_code == 200
        frozen.tick(timedelta(seconds=30))
        response = refresh(client, parent)
    assert_error(response, 401, "token_reused")
    assert response.headers["WWW-Authenticate"] == challenge(
        "This refresh token was already used; the session has been revoked. Log in again."
    )


def test_an_invalid_token_is_refused_with_the_invalid_token_challenge(client, alice_tokens):
    header, payload, signature = alice_tokens["access_token"].split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    response = me(client, forged)
    body = assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == challenge(body["message"])


def test_a_wrong_password_is_a_401_without_a_token_error(client, auth):
    auth.signup()
    response = login(client, password=WRONG_PASSWORD)
    assert_error(response, 401, "invalid_credentials")
    assert response.headers["WWW-Authenticate"] == REALM


@pytest.mark.parametrize("token", ["not-a-link-token", "a.b.c"])
def test_a_bad_link_token_is_a_400_without_a_challenge(client, token):
    response = client.post("/auth/verify-email", json={"token": token})
    assert_error(response, 400, "invalid_token")
    assert "WWW-Authenticate" not in response.headers
