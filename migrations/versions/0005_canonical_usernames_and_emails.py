"""usernames unique whatever their case; emails in their canonical form

Revision ID: 0005
Revises: 0004

Existing rows that the new rules make collide are reported, never merged or renamed
here: which account keeps the name or the address is the operator's decision. The
upgrade then stops (PostgreSQL rolls the whole revision back) with the list and the fix.

The canonical form is frozen below as auth_service/security/addresses.py defined it when
this revision was written: a migration must mean the same thing whatever the app's code
becomes later.
"""
import unicodedata

from alembic import op
from alembic.util import CommandError
import idna
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

users = sa.table('users', sa.column('id', sa.Integer), sa.column('username', sa.String),
                 sa.column('email', sa.String))
# users.email is String(254) (revision 0001), RFC 5321's limit on an address.
MAX_EMAIL_LENGTH = 254
REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}
MAX_INPUT_LENGTH = 1024


def upgrade():
    bind = op.get_bind()
    rewrites, email_problems = _canonical_emails(bind)
    problems = _username_collisions(bind) + email_problems
    if problems:
        raise CommandError(
            "Migration 0005 cannot continue; nothing was changed.\n"
            + "\n".join(problems)
            + "\nFix these rows (e.g. UPDATE users SET username = ... / email = ... WHERE id = ...),"
              " then run the upgrade again.")
    for user_id, canonical in rewrites:
        bind.execute(users.update().where(users.c.id == user_id).values(email=canonical))
    op.create_index('uq_users_username_lower', 'users', [sa.text('lower(username)')], unique=True)


def downgrade():
    # Emails stay in their canonical form: the older code compares them lower-cased, as they are.
    op.drop_index('uq_users_username_lower', table_name='users')


def _username_collisions(bind) -> list[str]:
    """Groups of usernames that differ only by case, as the new index sees them."""
    lowered = sa.func.lower(users.c.username)
    shared = sa.select(lowered).group_by(lowered).having(sa.func.count() > 1)
    rows = bind.execute(sa.select(users.c.id, users.c.username, lowered)
                        .where(lowered.in_(shared)).order_by(lowered, users.c.id)).all()
    return _report("usernames that differ only by case", rows)


def _canonical_emails(bind) -> tuple[list[tuple[int, str]], list[str]]:
    """The (id, canonical email) rows to rewrite, and what stops the rewrite: emails
    without a canonical form, and emails that share one."""
    rows = bind.execute(sa.select(users.c.id, users.c.email).order_by(users.c.id)).all()
    keyed = [(user_id, email, canonical_or_none(email)) for user_id, email in rows]
    invalid = [(user_id, email, user_id) for user_id, email, key in keyed if key is None]
    # An IDNA domain grows when encoded: a 254-character address can need 318.
    too_long = [(user_id, email, user_id) for user_id, email, key in keyed
                if key is not None and len(key) > MAX_EMAIL_LENGTH]
    owners = {}
    for user_id, _email, key in keyed:
        owners.setdefault(key, []).append(user_id)
    shared = sorted((row for row in keyed if row[2] is not None and len(owners[row[2]]) > 1),
                    key=lambda row: (row[2], row[0]))
    rewrites = [(user_id, key) for user_id, email, key in keyed if key not in (None, email)]
    return rewrites, (_report("emails with invisible or control characters or an invalid domain",
                              invalid)
                      + _report(f"emails longer than {MAX_EMAIL_LENGTH} characters once "
                                "normalized", too_long)
                      + _report("emails that are one address once normalized", shared))


def _report(title: str, rows) -> list[str]:
    """``title:`` then one line per group of (id, value, key) rows sharing a key."""
    groups = {}
    for user_id, value, key in rows:
        groups.setdefault(key, []).append(f"id {user_id} {value!r}")
    if not groups:
        return []
    return [f"{title}:"] + [f"  {', '.join(members)}" for members in groups.values()]


def canonical_or_none(value):
    """The canonical form of an address (trimmed, NFKC, lower-cased, ASCII domain), or
    None when it has none: invisible or control characters, or an invalid IDNA domain."""
    if not isinstance(value, str) or len(value) > MAX_INPUT_LENGTH:
        return None
    text = unicodedata.normalize("NFKC", value.strip())
    if any(unicodedata.category(char) in REFUSED_CATEGORIES for char in text):
        return None
    local, at, domain = text.lower().rpartition("@")
    if not at or not domain:
        return text.lower()
    if domain.isascii() and "xn--" not in domain:
        return f"{local}@{domain}"
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError:
        return None
