"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from auth_service import create_app
from auth_service.extensions import db
from auth_service.models import User
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


def test_the_username_index_ignores_case(app):
    # SQLite cannot reflect it (schema_diff skips it there): check it by its effect.
    with app.app_context():
        db.session.add(User(email="bob@example.com", username="Bob"))
        db.session.commit()
        db.session.add(User(email="other@example.com", username="bOB"))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()


def add_users(*rows: tuple[str, str]) -> None:
    """Insert (email, username) rows as they are, bypassing every check but the schema's."""
    db.session.add_all(User(email=email, username=username) for email, username in rows)
    db.session.commit()


def stored_emails() -> list[str]:
    return db.session.scalars(sa.select(User.email).order_by(User.id)).all()


def test_0010_reports_rows_the_new_rules_make_collide(app, runner):
    with app.app_context():
        downgrade(revision="0003")
        try:
            add_users(("bob@example.com", "Bob"), ("bob2@example.com", "bob"),
                      ("x@exämple.com", "x1"), ("x@xn--exmple-cua.com", "x2"),
                      ("ze\u200bro@example.com", "zero"), ("josé@bücher.example", "jose"))

            result = runner.invoke(args=["db", "upgrade"])  # what the operator runs

            assert result.exit_code == 1
            message = result.stderr
            assert "Migration 0010 cannot continue; nothing was changed." in message
            assert "usernames that differ only by case:\n  id 1 'Bob', id 2 'bob'" in message
            assert ("emails that are one address once normalized:\n"
                    "  id 3 'x@exämple.com', id 4 'x@xn--exmple-cua.com'") in message
            assert "invalid domain:\n  id 5 'ze\\u200bro@example.com'" in message
            assert "then run the upgrade again" in message
            with db.engine.connect() as connection:
                assert MigrationContext.configure(connection).get_current_revision() == "0003"
            assert stored_emails()[2] == "x@exämple.com"

            db.session.execute(sa.delete(User).where(User.id.in_([2, 4, 5])))
            db.session.commit()
            upgrade()

            assert stored_emails() == ["bob@example.com", "x@xn--exmple-cua.com",
                                       "josé@xn--bcher-kva.example"]
            add_users(("bob3@example.com", "BOB"))
        except sa.exc.IntegrityError:
            db.session.rollback()  # the index refused BOB: as it should
        else:
            pytest.fail("the upgrade left usernames unique only by case")
        finally:
            db.session.execute(sa.delete(User))
            db.session.commit()
            upgrade()
