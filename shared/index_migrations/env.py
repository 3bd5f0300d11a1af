"""Alembic environment of the run index: always run from code (`shared.run_index.migrate`), which passes
the connection; PostgreSQL takes an advisory lock so that processes starting together migrate one by one."""

from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    connection.execute(text("SELECT pg_advisory_xact_lock(7205338)"))  # any fixed number: ours
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
