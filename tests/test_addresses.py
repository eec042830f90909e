"""One mailbox, one account: every spelling of an address reaches the same canonical form
(auth_service.security.addresses), and invisible characters are refused with a 422."""

from __future__ import annotations

import pytest

from auth_service.persistence.models import User
from auth_service.security.addresses import InvalidEmail, normalize_email
from helpers import PASSWORD, WRONG_PASSWORD, assert_error, row_count, user_columns

IDN = "x@exämple.com"
PUNYCODE = "x@xn--exmple-cua.com"


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@EXAMPLE.com\t", "alice@example.com"),
        (IDN, PUNYCODE),
        ("X@EXÄMPLE.COM", PUNYCODE),
        ("x@XN--EXMPLE-CUA.com", PUNYCODE),
        ("ａｌｉｃｅ@example.com", "alice@example.com"),
        ("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"),
        # IDNA 2008: faß.de is its own domain, not fass.de (IDNA 2003 would merge them).
        ("x@faß.de", "x@xn--fa-hia.de"),
        ("josé@bücher.example", "josé@xn--bcher-kva.example"),
    ],
)
def test_spellings_of_one_address_share_one_canonical_form(spelling, canonical):
    assert normalize_email(spelling) == canonical
    assert normalize_email(canonical) == canonical


INVISIBLE = {
    "zero_width_space": "ali\u200bce@example.com",
    "zero_width_joiner": "alice@exa\u200dmple.com",
    "byte_order_mark": "\ufeffalice@example.com",
    "right_to_left_override": "alice@example.com\u202e",
    "soft_hyphen": "ali\u00adce@example.com",
    "control_character": "ali\x07ce@example.com",
    "inner_space": "ali ce@example.com",
}


@pytest.mark.parametrize("value", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_characters_are_refused_not_removed(value):
    with pytest.raises(InvalidEmail, match=r"invisible, control or space characters \(found U\+"):
        normalize_email(value)


@pytest.mark.parametrize("value", ["x@xn--zz.com", "x@-exämple.com", "x@exä..mple.com"])
def test_a_domain_without_an_idna_form_is_refused(value):
    with pytest.raises(InvalidEmail, match="not a valid internationalized domain name"):
        normalize_email(value)


# --- through the API -----------------------------------------------------------------


@pytest.mark.parametrize(
    "first, second",
    [(IDN, PUNYCODE), (PUNYCODE, IDN), ("alice@example.com", "ａｌｉｃｅ@example.com")],
)
def test_a_second_spelling_of_a_taken_address_is_refused(client, auth, in_db, first, second):
    assert auth.signup(email=first).status_code == 201

    assert_error(auth.signup(email=second, username="other"), 409, "email_taken")
    assert row_count(in_db, User) == 1


@pytest.mark.parametrize("spelling", [IDN, PUNYCODE, "X@Exämple.COM"])
def test_any_spelling_logs_in_to_the_one_account(client, auth, in_db, spelling):
    response = auth.signup(email=IDN)
    assert response.status_code == 201
    assert response.json["email"] == PUNYCODE  # stored and shown in its ASCII form
    assert user_columns(in_db, PUNYCODE)["email"] == PUNYCODE

    assert auth.login(email=spelling).status_code == 200


def test_full_width_letters_sign_up_as_ascii(client, auth, in_db):
    response = auth.signup(email="ａｌｉｃｅ@example.com")

    assert response.status_code == 201
    assert response.json["email"] == "alice@example.com"
    assert auth.login(email="alice@example.com").status_code == 200


def test_existing_lower_casing_is_unchanged(client, auth):
    assert auth.signup(email="  Alice@Example.COM ").json["email"] == "alice@example.com"
    assert auth.login(email="ALICE@EXAMPLE.COM").status_code == 200


@pytest.mark.parametrize("path", ["/auth/signup", "/auth/login", "/auth/forgot-password"])
@pytest.mark.parametrize("value", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_character_is_a_422_naming_the_field(client, auth, path, value):
    auth.signup()
    body = {"email": value, "username": "bob", "password": PASSWORD}

    response = client.post(path, json=body)

    body = assert_error(response, 422, "validation_error")
    [message] = body["errors"]["json"]["email"]
    assert "invisible, control or space characters" in message


def test_a_bad_idn_domain_is_a_422_at_signup(client):
    response = client.post(
        "/auth/signup", json={"email": "x@xn--zz.com", "username": "bob", "password": PASSWORD}
    )

    body = assert_error(response, 422, "validation_error")
    assert "internationalized domain name" in body["errors"]["json"]["email"][0]


def test_the_per_account_login_limit_counts_every_spelling(client, auth, limits):
    limits(LOGIN_FAILURES_PER_ACCOUNT="2 per minute")
    auth.signup(email=IDN)

    for spelling in (IDN, PUNYCODE):
        assert auth.login(email=spelling, password=WRONG_PASSWORD).status_code == 401
    response = auth.login(email="X@EXÄMPLE.COM", password=WRONG_PASSWORD)

    assert_error(response, 429, "rate_limited")


def test_the_cli_finds_the_account_by_another_spelling(client, auth, runner, in_db):
    auth.signup(email=IDN)

    result = runner.invoke(args=["users", "deactivate", "X@EXÄMPLE.COM"])

    assert result.exit_code == 0, result.output
    assert user_columns(in_db, PUNYCODE)["is_active"] is False


def test_the_cli_refuses_an_invisible_character(runner, in_db):
    result = runner.invoke(
        args=[
            "users",
            "create-superuser",
            "--email",
            "ro\u200bot@example.com",
            "--username",
            "root",
            "--password",
            PASSWORD,
        ]
    )

    assert result.exit_code == 2
    assert "email: Must not contain invisible, control or space characters" in result.output
    assert row_count(in_db, User) == 0
