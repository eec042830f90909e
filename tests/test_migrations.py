"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from auth_service import create_app
from auth_service.extensions import db
from config import TestingConfig


def schema_diff(engine) -> list:
    """Alembic autogenerate's differences between the models and the database."""

    def include_name(name, type_, parent_names):
        return not (type_ == "table" and name == "alembic_version")

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name})
        return compare_metadata(context, db.metadata)


def table_names(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_models_match_the_migrated_database(app):
    with app.app_context():
        assert schema_diff(db.engine) == []


@pytest.fixture(scope="module")
def scratch_app(tmp_path_factory):
    """An app on its own throwaway SQLite file, to run migrations back and forth."""

    class ScratchConfig(TestingConfig):
        DATABASE_URL = f"sqlite:///{tmp_path_factory.mktemp('migrations') / 'scratch.db'}"

    app = create_app(ScratchConfig)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_upgrade_builds_every_model_table(scratch_app):
    with scratch_app.app_context():
        upgrade()
        assert table_names(db.engine) == {"alembic_version", *db.metadata.tables}
        assert schema_diff(db.engine) == []


def test_downgrade_to_base_then_upgrade_again(scratch_app):
    with scratch_app.app_context():
        upgrade()
        downgrade(revision="base")
        assert table_names(db.engine) == {"alembic_version"}
        upgrade()
        assert schema_diff(db.engine) == []


def test_existing_token_families_become_sessions(scratch_app):
    """0004 gives every family a session: started at its first token, revoked when none
    of its tokens is left unrevoked."""
    with scratch_app.app_context():
        downgrade(revision="base")
        upgrade(revision="0003")
        db.session.execute(sa.text(
            "INSERT INTO users (id, email, username, is_active, is_superuser, token_version,"
            " created_at, updated_at) VALUES (1, 'a@example.com', 'a', 1, 0, 0,"
            " '2030-01-01 00:00:00', '2030-01-01 00:00:00')"))
        tokens = [  # jti, family, created, revoked_at, revoked_reason, user agent
            ("t1", "live", "2030-01-01 00:00:00", None, None, "first"),
            ("t2", "live", "2030-01-02 00:00:00", None, None, "second"),
            ("t3", "ended", "2030-01-01 00:00:00", "2030-01-03 00:00:00", "logout", "x"),
        ]
        for jti, family, created, revoked, reason, agent in tokens:
            db.session.execute(sa.text(
                "INSERT INTO refresh_tokens (jti, family_id, user_id, created_at, expires_at,"
                " revoked_at, revoked_reason, user_agent) VALUES (:jti, :family, 1, :created,"
                " '2030-01-08 00:00:00', :revoked, :reason, :agent)"),
                {"jti": jti, "family": family, "created": created, "revoked": revoked,
                 "reason": reason, "agent": agent})
        db.session.commit()

        upgrade()

        rows = db.session.execute(sa.text(
            "SELECT id, revoked_reason, user_agent, refreshed_at IS NOT NULL FROM sessions"
            " ORDER BY id")).all()
        db.session.rollback()
    assert [tuple(row) for row in rows] == [("ended", "logout", "x", 0), ("live", None, "first", 1)]
