"""signing keys: asymmetric token keys, published as a JWKS, rotated in two phases

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('signing_keys',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('public_jwk', sa.Text(), nullable=True),
    sa.Column('private_key', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('activates_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid')
    )
    # At most one current and one next key: the first key of two instances starting at
    # once, and two rotations at once, are decided here.
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        for state in ('current', 'next'):
            batch_op.create_index(f'uq_signing_keys_one_{state}', ['state'], unique=True,
                                  postgresql_where=sa.text(f"state = '{state}'"),
                                  sqlite_where=sa.text(f"state = '{state}'"))


def downgrade():
    op.drop_table('signing_keys')
