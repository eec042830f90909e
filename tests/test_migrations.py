"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from auth_service import create_app
from auth_service.extensions import db
from auth_service.persistence.models import User, utcnow
from config import TestingConfig


def schema_diff(engine) -> list:
    """Alembic autogenerate's differences between the models and the database."""

    def include_name(name, type_, parent_names):
        return not (type_ == "table" and name == "alembic_version")

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
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
    """0004 gives every family a session: started at its first token, revoked when any
    of its tokens was (a child that slipped past that revocation is revoked with it)."""
    with scratch_app.app_context():
        downgrade(revision="base")
        upgrade(revision="0003")
        db.session.execute(
            sa.text(
                "INSERT INTO users (id, email, username, is_active, is_superuser, token_version,"
                " created_at, updated_at) VALUES (1, 'a@example.com', 'a', 1, 0, 0,"
                " '2030-01-01 00:00:00', '2030-01-01 00:00:00')"
            )
        )
        tokens = [  # jti, family, created, revoked_at, revoked_reason, user agent
            ("t1", "live", "2030-01-01 00:00:00", None, None, "first"),
            ("t2", "live", "2030-01-02 00:00:00", None, None, "second"),
            ("t3", "ended", "2030-01-01 00:00:00", "2030-01-03 00:00:00", "logout", "x"),
            ("t4", "raced", "2030-01-01 00:00:00", "2030-01-02 00:00:00", "reuse_detected", "y"),
            ("t5", "raced", "2030-01-02 00:00:00", None, None, "y"),
        ]
        for jti, family, created, revoked, reason, agent in tokens:
            db.session.execute(
                sa.text(
                    "INSERT INTO refresh_tokens (jti, family_id, user_id, created_at, expires_at,"
                    " revoked_at, revoked_reason, user_agent) VALUES (:jti, :family, 1, :created,"
                    " '2030-01-08 00:00:00', :revoked, :reason, :agent)"
                ),
                {
                    "jti": jti,
                    "family": family,
                    "created": created,
                    "revoked": revoked,
                    "reason": reason,
                    "agent": agent,
                },
            )
        db.session.commit()

        upgrade()

        rows = db.session.execute(
            sa.text(
                "SELECT id, revoked_reason, user_agent, refreshed_at IS NOT NULL FROM sessions"
                " ORDER BY id"
            )
        ).all()
        unrevoked = db.session.scalars(
            sa.text("SELECT jti FROM refresh_tokens WHERE revoked_at IS NULL ORDER BY jti")
        ).all()
        db.session.rollback()
    assert [tuple(row) for row in rows] == [
        ("ended", "logout", "x", 0),
        ("live", None, "first", 1),
        ("raced", "reuse_detected", "y", 1),
    ]
    assert unrevoked == ["t1", "t2"]


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
    """Insert (email, username) rows as they are, bypassing every check but the schema's:
    only the columns revision 0004 has (the model's later ones do not exist yet)."""
    now = utcnow()
    db.session.execute(
        sa.insert(
            sa.table(
                "users",
                *(sa.column(name, User.__table__.c[name].type) for name in OLD_USER_COLUMNS),
            )
        ),
        [
            dict(zip(OLD_USER_COLUMNS, (email, username, True, False, 0, now, now), strict=True))
            for email, username in rows
        ],
    )
    db.session.commit()


OLD_USER_COLUMNS = (
    "email",
    "username",
    "is_active",
    "is_superuser",
    "token_version",
    "created_at",
    "updated_at",
)


def stored_emails() -> list[str]:
    return db.session.scalars(sa.select(User.email).order_by(User.id)).all()


def test_0005_reports_rows_the_new_rules_make_collide(app, runner):
    with app.app_context():
        downgrade(revision="0004")
        try:
            add_users(
                ("bob@example.com", "Bob"),
                ("bob2@example.com", "bob"),
                ("x@exämple.com", "x1"),
                ("x@xn--exmple-cua.com", "x2"),
                ("ze\u200bro@example.com", "zero"),
                ("josé@bücher.example", "jose"),
            )

            result = runner.invoke(args=["db", "upgrade"])  # what the operator runs

            assert result.exit_code == 1
            message = result.stderr
            assert "Migration 0005 cannot continue; nothing was changed." in message
            assert "usernames that differ only by case:\n  id 1 'Bob', id 2 'bob'" in message
            assert (
                "emails that are one address once normalized:\n"
                "  id 3 'x@exämple.com', id 4 'x@xn--exmple-cua.com'"
            ) in message
            assert "invalid domain:\n  id 5 'ze\\u200bro@example.com'" in message
            assert "then run the upgrade again" in message
            with db.engine.connect() as connection:
                assert MigrationContext.configure(connection).get_current_revision() == "0004"
            assert stored_emails()[2] == "x@exämple.com"

            db.session.execute(sa.delete(User).where(User.id.in_([2, 4, 5])))
            db.session.commit()
            upgrade()

            assert stored_emails() == [
                "bob@example.com",
                "x@xn--exmple-cua.com",
                "josé@xn--bcher-kva.example",
            ]
            add_users(("bob3@example.com", "BOB"))
        except sa.exc.IntegrityError:
            db.session.rollback()  # the index refused BOB: as it should
        else:
            pytest.fail("the upgrade left usernames unique only by case")
        finally:
            db.session.execute(sa.delete(User))
            db.session.commit()
            upgrade()


def test_0005_reports_addresses_too_long_once_normalized(app, runner):
    """254 characters with a Unicode domain become 289 in the ASCII (A-label) form: listed
    with the other problems, not a database's "value too long" halfway through."""
    domain = ".".join(["bücher"] * 5) + ".example"  # xn--bcher-kva: 7 more a label
    long_email = "a" * (254 - 1 - len(domain)) + "@" + domain
    assert len(long_email) == 254
    with app.app_context():
        downgrade(revision="0004")
        try:
            add_users((long_email, "long"), ("ok@bücher.example", "ok"))

            result = runner.invoke(args=["db", "upgrade"])

            assert result.exit_code == 1, result.output
            long_id = db.session.scalar(sa.select(User.id).where(User.email == long_email))
            assert (
                "emails longer than 254 characters once normalized:\n"
                f"  id {long_id} {long_email!r}\n"
            ) in result.stderr
            with db.engine.connect() as connection:
                assert MigrationContext.configure(connection).get_current_revision() == "0004"
            assert stored_emails() == [long_email, "ok@bücher.example"]
        finally:
            db.session.execute(sa.delete(User))
            db.session.commit()
            upgrade()


def test_0005_normalizes_as_it_did_when_written(app, monkeypatch):
    """The migration carries its own copy of the canonical form: a later change to the
    app's normalization cannot change what this revision writes."""
    from auth_service.security import addresses

    monkeypatch.setattr(addresses, "normalize_email", lambda value: value)
    monkeypatch.setattr(addresses, "canonical_or_none", lambda value: value)
    with app.app_context():
        downgrade(revision="0004")
        try:
            add_users(("Ｘ@Exämple.COM", "x"))
            upgrade()
            assert stored_emails() == ["x@xn--exmple-cua.com"]
        finally:
            db.session.execute(sa.delete(User))
            db.session.commit()
            upgrade()
