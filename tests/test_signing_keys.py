"""The life of signing keys: the first key, two-phase rotation, retirement, revocation,
a change of algorithm, what every instance sees, and ``flask keys ...``."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from freezegun import freeze_time

from auth_service.extensions import db
from auth_service.persistence.models import SigningKey
from auth_service.security import key_material, sealing, signing_keys
from config import TestingConfig
from helpers import LOGIN_TIME, me, refresh

CACHE = timedelta(seconds=TestingConfig.JWKS_CACHE_SECONDS)
REFRESH = timedelta(seconds=TestingConfig.JWKS_REFRESH_SECONDS)


def key_rows(in_db) -> list[SigningKey]:
    def run():
        rows = db.session.scalars(sa.select(SigningKey).order_by(SigningKey.created_at)).all()
        db.session.expunge_all()
        return rows

    return in_db(run)


def states(in_db) -> dict[str, str]:
    return {row.kid: row.state for row in key_rows(in_db)}


def published_kids(client) -> list[str]:
    return [key["kid"] for key in client.get("/.well-known/jwks.json").json["keys"]]


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def rotate(runner) -> str:
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    return result.output.split()[1]


# --- the first key ---------------------------------------------------------------------


def test_the_first_request_makes_one_current_key_sealed_at_rest(app, client, in_db):
    kids = published_kids(client)

    rows = key_rows(in_db)
    (current,) = [row for row in rows if row.state == "current"]
    assert kids == [current.kid] and current.algorithm == "ES256"
    assert current.kid == key_material.thumbprint(json.loads(current.public_jwk))
    assert "PRIVATE KEY" not in current.private_key and current.private_key.startswith("v1.")
    with app.app_context():
        pem = sealing.unseal(current.private_key, f"signing_keys:{current.kid}")
        assert "PRIVATE KEY" in pem
        with pytest.raises(sealing.Unsealable):
            sealing.unseal(current.private_key, "signing_keys:another-row")
    # JWT_SECRET_KEY, adopted so that tokens from before key ids expire on their own.
    (legacy,) = [row for row in rows if row.algorithm == "HS256"]
    assert legacy.state == "retired" and legacy.public_jwk is None and legacy.private_key is None


def test_two_instances_starting_at_once_make_one_first_key(make_app, in_db):
    apps = [make_app(TestingConfig) for _ in range(4)]
    barrier, rings, errors = threading.Barrier(len(apps)), [], []

    def start(instance):
        with instance.app_context():
            barrier.wait()
            try:
                rings.append(signing_keys.keyring().current.kid)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=start, args=(instance,)) for instance in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(rings)) == 1
    assert list(states(in_db).values()).count("current") == 1


def test_an_instance_that_read_an_empty_table_loses_to_the_one_that_wrote_first(app, in_db):
    with app.app_context():
        now = signing_keys.utcnow()
        late_change = signing_keys.due_change([], now)  # what a second instance decided
        first = signing_keys.keyring().current.kid
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as connection:
            late_change(connection)
        signing_keys.forget(app)
        assert signing_keys.keyring().current.kid == first
    assert list(states(in_db).values()).count("current") == 1


# --- rotation --------------------------------------------------------------------------


def test_a_rotation_publishes_first_signs_later_and_retires_the_old_key(
    client, auth, runner, in_db
):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        old = auth.login().json
        new_kid = rotate(runner)

        # Published at once, signing only once every cached JWKS can hold it.
        assert new_kid in published_kids(client)
        assert kid_of(auth.login().json["access_token"]) == kid_of(old["access_token"])
        frozen.tick(CACHE + REFRESH)
        fresh = auth.login().json
        assert kid_of(fresh["access_token"]) == new_kid
        assert states(in_db)[kid_of(old["access_token"])] == "retired"

        # The retired key still verifies what it signed, and stays published.
        assert me(client, fresh["access_token"]).status_code == 200
        assert refresh(client, old["refresh_token"]).status_code == 200
        assert kid_of(old["access_token"]) in published_kids(client)

        # Once its longest-lived token has expired, it leaves the JWKS and verifies nothing.
        frozen.tick(TestingConfig.JWT_REFRESH_TOKEN_EXPIRES + REFRESH)
        assert published_kids(client) == [new_kid]


def test_a_rotation_while_one_is_under_way_is_one_line_and_exit_1(client, runner):
    client.get("/.well-known/jwks.json")
    rotate(runner)
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "a rotation is already under way" in result.output


def test_rotate_if_older_than_does_nothing_for_a_young_key(client, runner, in_db):
    client.get("/.well-known/jwks.json")
    result = runner.invoke(args=["keys", "rotate", "--if-older-than", "90d"])
    assert result.exit_code == 0 and "Nothing due" in result.output
    assert "next" not in states(in_db).values()
    with freeze_time(signing_keys.utcnow() + timedelta(days=91)):
        result = runner.invoke(args=["keys", "rotate", "--if-older-than", "90d"])
    assert result.exit_code == 0 and "Published" in result.output


def test_every_instance_sees_a_rotation_within_the_refresh_time(make_app, client, runner):
    other = make_app(TestingConfig).test_client()
    with freeze_time(LOGIN_TIME) as frozen:
        before = published_kids(other)
        new_kid = rotate(runner)
        frozen.tick(REFRESH - timedelta(seconds=1))
        assert published_kids(other) == before  # its cached read
        frozen.tick(timedelta(seconds=1))
        assert new_kid in published_kids(other)


def test_changing_the_algorithm_is_a_rotation(make_app, client, auth, in_db):
    auth.signup()
    with freeze_time(LOGIN_TIME) as frozen:
        before = auth.login().json
        eddsa = make_app(type("EdDSAConfig", (TestingConfig,), {"JWT_ALGORITHM": "EdDSA"}))
        eddsa_client = eddsa.test_client()
        eddsa_client.get("/.well-known/jwks.json")
        (upcoming,) = [r for r in key_rows(in_db) if r.state == "next"]
        assert upcoming.algorithm == "EdDSA"
        # The tokens already issued keep working on the instance of the new algorithm.
        assert me(eddsa_client, before["access_token"]).status_code == 200
        frozen.tick(CACHE + REFRESH)
        response = eddsa_client.post(
            "/auth/login", json={"email": "alice@example.com", "password": "correct horse battery"}
        )
        assert jwt.get_unverified_header(response.json["access_token"])["alg"] == "EdDSA"
        assert me(eddsa_client, before["access_token"]).status_code == 200


# --- revocation ------------------------------------------------------------------------


def test_revoking_the_current_key_refuses_its_tokens_and_a_new_key_signs(
    client, auth, runner, in_db
):
    tokens = auth.signup_and_login()
    kid = kid_of(tokens["access_token"])

    # "--": a thumbprint may start with "-".
    result = runner.invoke(args=["keys", "revoke", "--yes", "--", kid])

    assert result.exit_code == 0, result.output
    assert me(client, tokens["access_token"]).status_code == 401
    assert refresh(client, tokens["refresh_token"]).status_code == 401
    assert kid not in published_kids(client)
    again = auth.login().json
    assert kid_of(again["access_token"]) != kid
    assert me(client, again["access_token"]).status_code == 200
    assert states(in_db)[kid] == "revoked"


def test_revoke_asks_first(client, runner, in_db):
    kid = published_kids(client)[0]
    result = runner.invoke(args=["keys", "revoke", "--", kid], input="n\n")
    assert result.exit_code == 1
    assert states(in_db)[kid] == "current"


@pytest.mark.parametrize(
    "args, message",
    [
        (["keys", "revoke", "no-such-kid", "--yes"], "no signing key 'no-such-kid'"),
        (["keys", "rotate", "--if-older-than", "soon"], "is not an age like 90d"),
        (["keys", "export-public", "no-such-kid"], "no published key 'no-such-kid'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(client, runner, args, message):
    client.get("/.well-known/jwks.json")
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


# --- list, import, export --------------------------------------------------------------


def test_list_shows_every_key_in_full(client, runner):
    kid = published_kids(client)[0]
    lines = runner.invoke(args=["keys", "list"]).output.splitlines()
    assert any(line.startswith(f"{kid}\tES256\tcurrent\tcreated ") for line in lines)
    listed = json.loads(runner.invoke(args=["keys", "list", "--json"]).output)
    assert {key["kid"]: key["state"] for key in listed}[kid] == "current"
    assert set(listed[0]) == {
        "kid",
        "algorithm",
        "state",
        "created",
        "activates",
        "retires",
        "revoked",
    }


@pytest.mark.parametrize(
    "private, algorithm",
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    ],
    ids=["ES256", "RS256"],
)
def test_import_publishes_an_operators_key_as_next(client, runner, tmp_path, private, algorithm):
    client.get("/.well-known/jwks.json")
    path = tmp_path / "key.pem"
    path.write_text(key_material.to_pem(private))

    result = runner.invoke(args=["keys", "import", str(path)])

    assert result.exit_code == 0, result.output
    expected = key_material.public_jwk(private, algorithm)
    exported = json.loads(
        runner.invoke(args=["keys", "export-public", "--", expected["kid"]]).output
    )
    assert exported == expected
    assert "d" not in exported and "p" not in exported


@pytest.mark.parametrize(
    "content",
    ["not a key", key_material.to_pem(ec.generate_private_key(ec.SECP384R1()))],
    ids=["garbage", "P-384"],
)
def test_import_refuses_what_cannot_sign_in_one_line(client, runner, tmp_path, content):
    path = tmp_path / "key.pem"
    path.write_text(content)
    result = runner.invoke(args=["keys", "import", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_export_public_is_the_jwks(client, runner):
    exported = json.loads(runner.invoke(args=["keys", "export-public"]).output)
    assert exported == client.get("/.well-known/jwks.json").json
