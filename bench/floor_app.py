"""The floor of the stack: Flask + SQLAlchemy + psycopg2 + PostgreSQL doing the least work.

Served by bench/run.py with the same gunicorn.conf.py as the app. ``GET /select/<id>``
answers a JSON body after one primary-key SELECT on ``users`` (the old floor for
``GET /auth/me``); ``GET /verified/<id>`` first verifies the request's bearer token with
PyJWT against the key its ``kid`` names, issuer and audience included, then runs that
SELECT (the floor for ``GET /auth/me``: the same token, so the same algorithm and size);
``GET /jwks`` answers the published keys serialised once (the floor for
``GET /.well-known/jwks.json``); ``POST /write/<id>`` verifies the JSON body's refresh
token as ``/verified`` does, runs an UPDATE and an INSERT in one transaction and signs a
new pair (the floor for ``POST /auth/refresh``); ``POST /login`` verifies the JSON body's
password against an argon2id hash at the production parameters, with the app's own
hasher, one hash at a time per ARGON2_CONCURRENCY slot as the app hashes, and signs a
pair (what any login on this stack pays at least, next to the table's cores / hash
time). A pair is an access and a refresh token with the claims of the app's, signed by
PyJWT with a key of the app's algorithm (JWT_ALGORITHM) that this process makes at start.
No ORM, no flask-jwt-extended, no hooks: what any endpoint on this stack must pay at least.
"""

from __future__ import annotations

import json
import os
import uuid

import jwt
import sqlalchemy as sa
from argon2 import Type
from flask import Flask, Response, abort, jsonify, request

from auth_service.security import key_material
from auth_service.security.passwords import PasswordHasher, hashing_slots
from bench.pairs import signed_pair
from config import Config

app = Flask(__name__)
engine = sa.create_engine(os.environ["FLOOR_DATABASE_URL"])

SELECT_USER = sa.text(
    "SELECT id, email, username, full_name, is_active, is_superuser, "
    "created_at, updated_at, email_verified, avatar_url "
    "FROM users WHERE id = :id"
)
UPDATE_ROW = sa.text("UPDATE bench_floor SET n = n + 1, touched_at = now() WHERE id = :id")
HASHER = PasswordHasher(
    time_cost=Config.ARGON2_TIME_COST,
    memory_cost=Config.ARGON2_MEMORY_COST,
    parallelism=Config.ARGON2_PARALLELISM,
    type=Type.ID,
)
PASSWORD_HASH = HASHER.hash(os.environ.get("FLOOR_LOGIN_PASSWORD", "floor"))
# gunicorn.conf.py sets ARGON2_CONCURRENCY (cores / workers) for both apps. Uncapped, the
# 2 x 4 threads hashed at once on 2 cores and this login made 0.60 of cores / hash time,
# less than the app's own (0.67); capped, 0.77-0.89 (bench/cpu_split.py, perf_split.py).
HASH_SLOTS = hashing_slots(int(os.environ.get("ARGON2_CONCURRENCY") or 0))
# The app's published keys, read once (at the first request that needs them: the app
# makes its first key when the bench signs its first token).
PUBLISHED = sa.text(
    "SELECT public_jwk FROM signing_keys "
    "WHERE state IN ('next', 'current', 'retired') AND public_jwk IS NOT NULL"
)
_keys: dict = {}
INSERT_ROW = sa.text(
    "INSERT INTO bench_floor_log (jti, floor_id, created_at) VALUES (:jti, :id, now())"
)
ALGORITHM = os.environ.get("JWT_ALGORITHM", "ES256")
SIGNING_KEY = key_material.generate(ALGORITHM)
ISSUER = os.environ["JWT_ISSUER"]


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.get("/select/<int:user_id>")
def select_user(user_id: int):
    with engine.connect() as connection:
        row = connection.execute(SELECT_USER, {"id": user_id}).mappings().first()
    if row is None:
        abort(404)
    return jsonify(dict(row))


def published_keys() -> dict:
    """``{"jwks": bytes, "by_kid": {kid: PyJWK}}`` of the app's keys, read once."""
    if not _keys:
        with engine.connect() as connection:
            jwks = [json.loads(row[0]) for row in connection.execute(PUBLISHED)]
        _keys["jwks"] = json.dumps({"keys": jwks}, separators=(",", ":")).encode()
        _keys["by_kid"] = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in jwks}
    return _keys


def verified(token: str, audience: str) -> dict:
    """The claims of ``token``, verified with the app's published key its ``kid`` names."""
    key = published_keys()["by_kid"][jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key, algorithms=[key.algorithm_name], audience=audience, issuer=ISSUER)


@app.get("/verified/<int:user_id>")
def verified_select(user_id: int):
    verified(request.headers.get("Authorization", "").removeprefix("Bearer "), "api")
    return select_user(user_id)


@app.get("/jwks")
def jwks():
    return Response(
        published_keys()["jwks"],
        mimetype="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@app.post("/write/<int:row_id>")
def write(row_id: int):
    claims = verified(request.get_json()["refresh_token"], ISSUER)
    with engine.begin() as connection:
        connection.execute(UPDATE_ROW, {"id": row_id})
        connection.execute(INSERT_ROW, {"jti": str(uuid.uuid4()), "id": row_id})
    return jsonify(signed_pair(SIGNING_KEY, ALGORITHM, ISSUER, claims["sub"], claims["sid"]))


@app.post("/login")
def login():
    with HASH_SLOTS:
        HASHER.verify(PASSWORD_HASH, request.get_json()["password"])
    return jsonify(signed_pair(SIGNING_KEY, ALGORITHM, ISSUER, "1", str(uuid.uuid4())))
