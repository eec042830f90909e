"""sessions: one row per login, that rotation and revocation both lock

Existing token families become sessions: created at their first token, expiring with
them, and revoked when any of their tokens was. Every revocation before this revision
covered a whole family (or user), so an unrevoked token in a family with a revoked one
is a child that a refresh in flight slipped past the revocation: it is revoked too.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=32), nullable=True),
    sa.Column('aal', sa.String(length=8), nullable=False),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.Column('ip_address', sa.String(length=45), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_user_id'), ['user_id'], unique=False)

    # One session per family, revoked at its latest revocation (with that token's reason).
    op.execute("""
        INSERT INTO sessions (id, user_id, created_at, expires_at, refreshed_at, revoked_at,
                              revoked_reason, aal, user_agent, ip_address)
        SELECT family.family_id, family.user_id, family.created_at, family.expires_at,
               family.refreshed_at,
               family.revoked_at,
               (SELECT t.revoked_reason FROM refresh_tokens t
                WHERE t.family_id = family.family_id AND t.revoked_at IS NOT NULL
                ORDER BY t.revoked_at DESC LIMIT 1),
               'aal1',
               (SELECT t.user_agent FROM refresh_tokens t WHERE t.family_id = family.family_id
                ORDER BY t.created_at LIMIT 1),
               (SELECT t.ip_address FROM refresh_tokens t WHERE t.family_id = family.family_id
                ORDER BY t.created_at LIMIT 1)
        FROM (SELECT family_id, MIN(user_id) AS user_id, MIN(created_at) AS created_at,
                     MAX(expires_at) AS expires_at,
                     CASE WHEN COUNT(*) > 1 THEN MAX(created_at) END AS refreshed_at,
                     MAX(revoked_at) AS revoked_at
              FROM refresh_tokens GROUP BY family_id) AS family
    """)
    op.execute("""
        UPDATE refresh_tokens
        SET revoked_at = (SELECT s.revoked_at FROM sessions s WHERE s.id = refresh_tokens.family_id),
            revoked_reason = (SELECT s.revoked_reason FROM sessions s
                              WHERE s.id = refresh_tokens.family_id)
        WHERE revoked_at IS NULL
          AND family_id IN (SELECT id FROM sessions WHERE revoked_at IS NOT NULL)
    """)

    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grace_used_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key('fk_refresh_tokens_family_id_sessions', 'sessions',
                                    ['family_id'], ['id'], ondelete='CASCADE')


def downgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_constraint('fk_refresh_tokens_family_id_sessions', type_='foreignkey')
        batch_op.drop_column('grace_used_at')

    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_user_id'))

    op.drop_table('sessions')
