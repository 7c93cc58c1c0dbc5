"""Alembic environment: always called with a live connection from graft.db.migrate."""

from __future__ import annotations

from alembic import context

from graft.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `graft init` (they need the configured database)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
