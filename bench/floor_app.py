"""The floor of the stack: Flask + SQLAlchemy + psycopg2 + PostgreSQL doing the least work.

Served by bench/run.py with the same gunicorn.conf.py as the app. ``GET /select/<id>``
answers a JSON body after one primary-key SELECT on ``users`` (the floor for
``GET /auth/me``); ``POST /write/<id>`` runs an UPDATE and an INSERT in one transaction
(the floor for ``POST /auth/refresh``). No ORM, no JWT, no hooks: what any endpoint on
this stack must pay at least.
"""

from __future__ import annotations

import os
import uuid

import sqlalchemy as sa
from flask import Flask, abort, jsonify

app = Flask(__name__)
engine = sa.create_engine(os.environ["FLOOR_DATABASE_URL"])

SELECT_USER = sa.text("SELECT id, email, username, full_name, is_active, is_superuser, "
                      "created_at, updated_at, email_verified, avatar_url "
                      "FROM users WHERE id = :id")
UPDATE_ROW = sa.text("UPDATE bench_floor SET n = n + 1, touched_at = now() WHERE id = :id")
INSERT_ROW = sa.text("INSERT INTO bench_floor_log (jti, floor_id, created_at) "
                     "VALUES (:jti, :id, now())")


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


@app.post("/write/<int:row_id>")
def write(row_id: int):
    with engine.begin() as connection:
        connection.execute(UPDATE_ROW, {"id": row_id})
        connection.execute(INSERT_ROW, {"jti": str(uuid.uuid4()), "id": row_id})
    return jsonify(ok=True, id=row_id)
