"""Forged, tampered, misplaced and malformed tokens: every one is a 401 in the shared
shape with a ``WWW-Authenticate: Bearer`` challenge, never a 500 or a 200.

Tokens are signed by the current key (ES256 here) and name it in ``kid``; the refusals
that are about keys themselves (unknown, revoked, retired, confused) are in
test_signing_key_attacks.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask_jwt_extended import decode_token
from jwt.exceptions import DecodeError

from helpers import (
    ERROR_KEYS,
    assert_error,
    bearer,
    claims,
    current_key,
    me,
    refresh,
    sign_segments,
    token_rows,
)


def assert_refused(response, error: str | None = None) -> None:
    """401, exactly {code, status, error, message}, and the Bearer challenge."""
    body = assert_error(response, 401, error)
    assert set(body) == ERROR_KEYS
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="auth_service"')
    assert "Set-Cookie" not in response.headers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hs256(signing_input: str, key: str) -> str:
    """An HS256 signature made by hand, whatever the header claims."""
    return b64url(hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest())


@pytest.fixture
def forge(app, alice_tokens):
    """Re-sign Alice's access token with changed claims, header, algorithm or key (by
    default the current key, under the header this service writes)."""
    signing = current_key(app)

    def make(changes=None, drop=(), headers=None, algorithm="ES256", key=None):
        payload = claims(alice_tokens["access_token"]) | (changes or {})
        for name in drop:
            del payload[name]
        header = {"kid": signing.kid, "typ": "at+jwt"} | (headers or {})
        return jwt.encode(
            payload, signing.signing if key is None else key, algorithm=algorithm, headers=header
        )

    return make


def test_forged_token_with_every_claim_is_accepted(client, forge):
    # The control for the tests below: forge() alone yields a working token.
    assert me(client, forge()).status_code == 200


# --- algorithm -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_unsigned_token_is_refused(client, alice_tokens, alg):
    kid = jwt.get_unverified_header(alice_tokens["access_token"])["kid"]
    header = b64url_json({"alg": alg, "kid": kid, "typ": "at+jwt"})
    payload = b64url_json(claims(alice_tokens["access_token"]))

    assert_refused(me(client, f"{header}.{payload}."), "invalid_token")


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("HS512", "a-different-secret-" + "z" * 40),
        ("HS256", "a-different-secret-" + "z" * 40),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ],
    ids=["HS512", "HS256", "wrong-key"],
)
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_token_with_wrong_algorithm_or_key_is_refused(client, forge, algorithm, key):
    assert_refused(me(client, forge(algorithm=algorithm, key=key)), "invalid_token")


@pytest.mark.parametrize("alg", ["HS256", "HS512", "RS256", "EdDSA", "ES384", "es256"])
def test_token_whose_header_names_another_algorithm_is_refused(app, client, alice_tokens, alg):
    # A valid signature of the current key under a header that names another algorithm
    # (algorithm confusion): the key's own algorithm decides.
    key = current_key(app)
    token = sign_segments(
        b64url_json({"alg": alg, "kid": key.kid, "typ": "at+jwt"}),
        alice_tokens["access_token"].split(".")[1],
        key.signing,
    )

    assert_refused(me(client, token), "invalid_token")


def resign(app, header: str, payload: str) -> str:
    """A token of these two segments with a valid signature of the current key."""
    return sign_segments(header, payload, current_key(app).signing)


def written_header(app, **changes) -> dict:
    """The header this service writes, with ``changes``."""
    return {"alg": "ES256", "kid": current_key(app).kid, "typ": "at+jwt"} | changes


@pytest.mark.parametrize(
    "header",
    [
        lambda h: b64url(json.dumps(dict(reversed(h.items())), separators=(",", ":")).encode()),
        lambda h: b64url(json.dumps(h).encode()),  # with spaces
        lambda h: b64url_json({"alg": h["alg"], "kid": h["kid"]}),  # no typ
        lambda h: b64url_json({"alg": h["alg"], "typ": h["typ"]}),  # no kid
        lambda h: b64url_json(h | {"typ": "JWT"}),  # another typ
        lambda h: b64url_json(h | {"extra": 1}),  # one field more
        lambda h: b64url_json(h) + "=",  # padded
        lambda h: b64url_json(h)[:-1] + "+",  # base64 (not url) alphabet
    ],
    ids=["reordered", "spaces", "no-typ", "no-kid", "typ-JWT", "extra-field", "padded", "plus"],
)
def test_only_the_exact_header_the_service_writes_is_accepted(app, client, alice_tokens, header):
    payload = alice_tokens["access_token"].split(".")[1]
    assert me(client, resign(app, b64url_json(written_header(app)), payload)).status_code == 200
    assert_refused(me(client, resign(app, header(written_header(app)), payload)), "invalid_token")


@pytest.mark.parametrize(
    "payload",
    [
        lambda p: p + "==",  # padding
        lambda p: p[:-1] + "+",  # base64 (not url) alphabet
        lambda p: p[:1] + " " + p[1:],  # a space a lenient decoder would skip
        lambda p: p[:5],  # a length no base64 string has
        lambda p: b64url(b"\xff\xfe"),  # not UTF-8
        lambda p: b64url(b"[1, 2]"),  # JSON, not an object
        lambda p: b64url(b'{"sub": "1"'),  # not JSON
    ],
    ids=["padded", "plus", "space", "length", "utf8", "array", "json"],
)
def test_a_correctly_signed_malformed_payload_is_refused(app, client, alice_tokens, payload):
    header, original, _ = alice_tokens["access_token"].split(".")
    assert_refused(me(client, resign(app, header, payload(original))), "invalid_token")


def test_a_non_canonical_signature_encoding_is_refused(client, alice_tokens):
    # The last of 86 characters carries four padding bits: flipping one decodes to the
    # same 64 bytes. Only the canonical spelling is the token that was issued.
    header, payload, signature = alice_tokens["access_token"].split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    twin = signature[:-1] + alphabet[last ^ 1]
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(signature + "==")

    assert_refused(me(client, f"{header}.{payload}.{twin}"), "invalid_token")


@pytest.mark.parametrize(
    "changes",
    [{"iat": 4102444800}, {"iat": "soon"}, {"exp": "never"}, {"nbf": "now"}, {"exp": None}],
    ids=["iat-future", "iat-text", "exp-text", "nbf-text", "exp-null"],
)
def test_bad_time_claims_are_refused(client, forge, changes):
    assert_refused(me(client, forge(changes)), "invalid_token")


@pytest.mark.parametrize("value", [42, b"a.b.c", ["a.b.c"], None])
def test_a_token_that_is_not_a_string_is_a_decode_error(app, value):
    # The refresh body's schema answers 422 first; decode_token itself must not crash.
    with app.app_context(), pytest.raises(DecodeError):
        decode_token(value)


# --- tampering -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "2"},
        {"exp": 4102444800},
        {"ver": 0, "sid": "another-session"},
        {"type": "refresh"},
    ],
    ids=["sub", "exp", "sid", "type"],
)
def test_tampered_payload_with_the_old_signature_is_refused(client, auth, alice_tokens, changes):
    auth.signup("bob@example.com", "bob")  # user 2 exists: only the signature protects it
    header, payload, signature = alice_tokens["access_token"].split(".")
    tampered = b64url_json(claims(alice_tokens["access_token"]) | changes)
    assert tampered != payload

    assert_refused(me(client, f"{header}.{tampered}.{signature}"), "invalid_token")


@pytest.mark.parametrize(
    "tamper",
    [
        # The first character: the last one carries padding bits a decoder may ignore.
        lambda sig: ("B" if sig[0] == "A" else "A") + sig[1:],
        lambda sig: sig[::-1],
        lambda sig: sig[:-4],
        lambda sig: "",
    ],
    ids=["flipped", "reversed", "truncated", "empty"],
)
def test_tampered_signature_is_refused(client, alice_tokens, tamper):
    header, payload, signature = alice_tokens["access_token"].split(".")

    assert_refused(me(client, f"{header}.{payload}.{tamper(signature)}"), "invalid_token")


@pytest.mark.parametrize(
    "header",
    [
        {"kid": "1"},
        {"kid": "../../../../dev/null"},
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jwk": {"kty": "oct", "k": "AA"}},
        {"x5c": ["MIIBszCCAVmgAwIBAgIUBogus"]},
        {"crit": ["exp"]},
    ],
    ids=["kid", "kid-path", "jku", "x5u", "jwk", "x5c", "crit"],
)
def test_token_naming_its_own_key_is_refused(client, forge, header):
    # Correctly signed: only the header rule refuses it.
    assert_refused(me(client, forge(headers=header)), "invalid_token")


# --- claims ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim", ["exp", "iat", "jti", "sub", "sid", "ver", "iss", "aud", "client_id"]
)
def test_token_missing_a_required_claim_is_refused(client, forge, claim):
    assert_refused(me(client, forge(drop=[claim])), "invalid_token")


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "id"},
        {"type": "access"},  # flask-jwt-extended's claim has no place in an access token
        {"type": "refresh"},
        {"sub": "alice"},
        {"sub": "1.0"},
        {"sub": ""},
        {"sub": 1},
        {"sub": "9" * 40},
        {"sub": "\u00b2"},
        {"sub": "\u0661"},
        {"sub": " 1"},
        {"jti": 42},
        {"ver": -1},
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"aud": ["another-api"]},
        {"aud": []},
        {"aud": 1},
        {"client_id": "another-client"},
    ],
    ids=repr,
)
def test_token_with_bad_claim_value_is_refused(client, forge, changes):
    assert_refused(me(client, forge(changes)))


def test_token_not_yet_valid_is_refused(client, forge):
    assert_refused(me(client, forge({"nbf": 4102444800})), "invalid_token")


def test_expired_token_is_refused(client, forge):
    assert_refused(me(client, forge({"exp": 946684800})), "token_expired")


def test_token_for_unknown_user_is_refused(client, forge):
    assert_refused(me(client, forge({"sub": "999999"})), "invalid_token")


def test_a_subject_with_a_leading_zero_is_refused(client, forge, alice_tokens):
    # One spelling of an account id: "01" is not the subject this service writes for 1.
    sub = claims(alice_tokens["access_token"])["sub"]
    assert_refused(me(client, forge({"sub": "0" + sub})), "invalid_token")


def test_token_naming_another_accounts_session_is_refused(client, auth, forge):
    # A signed token whose sid is a live session of someone else: the session must be the
    # token's own account's (the read joins the session by id alone).
    bob = auth.signup_and_login("bob@example.com", "bob")
    assert_refused(me(client, forge({"sid": claims(bob["access_token"])["sid"]})), "token_revoked")


@pytest.mark.parametrize("endpoint", ["refresh", "csrf"])
def test_refresh_token_naming_another_account_than_its_row_is_refused(
    app, client, auth, alice_tokens, endpoint
):
    # Alice's refresh token row, under Bob's account, session and version: the row read by
    # its jti must be of the account and the session the token names.
    bob = claims(auth.signup_and_login("bob@example.com", "bob")["refresh_token"])
    payload = claims(alice_tokens["refresh_token"]) | {
        name: bob[name] for name in ("sub", "sid", "ver")
    }
    key = current_key(app)
    forged = jwt.encode(
        payload, key.signing, algorithm="ES256", headers={"kid": key.kid, "typ": "refresh+jwt"}
    )

    if endpoint == "refresh":
        response = refresh(client, forged)
    else:
        client.set_cookie("refresh_token_cookie", forged, path="/auth")
        response = client.get("/auth/csrf")
    assert_refused(response, "token_revoked")


def test_refresh_token_unknown_to_the_database_is_refused(app, client, alice_tokens, in_db):
    unknown_jti = "00000000-0000-0000-0000-000000000000"
    payload = claims(alice_tokens["refresh_token"]) | {"jti": unknown_jti}
    key = current_key(app)
    forged = jwt.encode(
        payload, key.signing, algorithm="ES256", headers={"kid": key.kid, "typ": "refresh+jwt"}
    )

    assert_refused(refresh(client, forged))
    assert len(token_rows(in_db)) == 1


# --- token type ------------------------------------------------------------------------


def test_refresh_token_is_refused_as_access_token(client, alice_tokens):
    assert_refused(me(client, alice_tokens["refresh_token"]), "invalid_token")


@pytest.mark.parametrize("via", ["body", "cookie"])
def test_access_token_is_refused_at_refresh(client, alice_tokens, in_db, via):
    if via == "body":
        response = refresh(client, alice_tokens["access_token"])
    else:
        client.set_cookie("refresh_token_cookie", alice_tokens["access_token"], path="/auth")
        # Past the CSRF check, so that the token type is what gets judged.
        csrf = claims(alice_tokens["access_token"]).get("csrf", "x")
        response = client.post("/auth/refresh", headers={"X-CSRF-TOKEN": csrf})

    assert_refused(response, "invalid_token")
    assert [row.spent_at for row in token_rows(in_db)] == [None]


# --- where the token travels -----------------------------------------------------------


@pytest.mark.parametrize("parameter", ["jwt", "access_token", "token"])
def test_access_token_in_the_query_string_is_ignored(client, alice_tokens, parameter):
    response = client.get(f"/auth/me?{parameter}={alice_tokens['access_token']}")

    assert_refused(response, "authorization_required")


def test_access_token_in_a_cookie_is_ignored(client, alice_tokens):
    client.set_cookie("access_token_cookie", alice_tokens["access_token"])

    assert_refused(client.get("/auth/me"), "authorization_required")


@pytest.mark.parametrize("parameter", ["jwt", "refresh_token"])
def test_refresh_token_in_the_query_string_is_ignored(client, alice_tokens, in_db, parameter):
    client.delete_cookie("refresh_token_cookie", path="/auth")

    response = client.post(f"/auth/refresh?{parameter}={alice_tokens['refresh_token']}")

    assert_refused(response, "refresh_token_required")
    assert [row.spent_at for row in token_rows(in_db)] == [None]


# --- malformed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer x", "a.b", "a.b.c.d.e"]
)
def test_malformed_refresh_token_is_a_json_401(client, token):
    assert_refused(refresh(client, token))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Basic dXNlcjpwYXNz",
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer a.b",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        "Bearer " + b64url_json(["not", "an", "object"]) + ".e30.c2ln",
        "Bearer " + b64url(b"\xff\xfe") + ".e30.c2ln",
        "Bearer ....",
        "",
        "Token abc",
        "bearer",
    ],
)
def test_malformed_authorization_header_is_a_json_401(client, authorization):
    assert_refused(client.get("/auth/me", headers={"Authorization": authorization}))


def test_missing_authorization_header_is_a_json_401(client):
    assert_refused(client.get("/auth/me"), "authorization_required")


@pytest.mark.parametrize("body", [None, {}])
def test_refresh_without_a_token_names_where_it_goes(client, alice_tokens, body):
    client.delete_cookie("refresh_token_cookie", path="/auth")
    headers = bearer(alice_tokens["access_token"])  # not a refresh token: never read here

    response = client.post("/auth/refresh", json=body, headers=headers)

    assert_refused(response, "refresh_token_required")
    assert response.json["message"] == (
        "A refresh token is required: send `refresh_token` in the JSON body or the "
        "refresh cookie (refresh_token_cookie)."
    )
