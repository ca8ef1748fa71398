"""Layout 5: an index of the active reservations by bin, which reserving, releasing and the store's
consistency check look them up by; a carrier booking keeps whether it meets the promise and the
carriers passed over, so that a redelivered book_carrier answers as the first did; on PostgreSQL,
text compared byte by byte as SQLite compares it; the store's layout is Alembic's from here on.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"

TEXT_COLUMNS = "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND data_type = 'text'"


def upgrade() -> None:
    op.execute("CREATE INDEX active_reservations ON reservations (sku, warehouse, bin) WHERE state = 'active'")
    op.execute("ALTER TABLE carrier_bookings ADD COLUMN meets_promise INTEGER")  # 1 or 0; NULL for bookings made before
    op.execute("ALTER TABLE carrier_bookings ADD COLUMN refused TEXT")  # JSON: ["<carrier> <why>", ...]
    if op.get_context().dialect.name == "postgresql":
        # Bins, ids and ISO timestamps are text: sorted and compared by the database's collation, a bin
        # 'b-01' would come before 'C-01' on a database made with en_US or ICU and after it on SQLite.
        _collate('"C"')
    # Orderops versions before Alembic read the layout here: they refuse this store instead of writing to it.
    op.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.execute("DROP INDEX active_reservations")
    op.execute("ALTER TABLE carrier_bookings DROP COLUMN meets_promise")
    op.execute("ALTER TABLE carrier_bookings DROP COLUMN refused")
    if op.get_context().dialect.name == "postgresql":
        _collate('"default"')
    op.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")


def _collate(collation: str) -> None:
    for table, column in op.get_bind().exec_driver_sql(TEXT_COLUMNS).fetchall():
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT COLLATE {collation}')
