"""Alembic's entry point for the warehouse store: it runs on the connection the store hands it."""

from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
