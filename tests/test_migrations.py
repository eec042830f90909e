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
