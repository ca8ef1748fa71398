"""Layout 5: an index of the active reservations by bin, which reserving, releasing and the store's
consistency check look them up by; the store's layout is Alembic's from here on.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute("CREATE INDEX active_reservations ON reservations (sku, warehouse, bin) WHERE state = 'active'")
    # Orderops versions before Alembic read the layout here: they refuse this store instead of writing to it.
    op.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.execute("DROP INDEX active_reservations")
    op.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
