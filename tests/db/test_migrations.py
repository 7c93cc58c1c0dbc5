from __future__ import annotations

from sqlalchemy import inspect, text

from graft.db import Database
from graft.db.models import Base


async def test_migrations_create_every_table_and_are_idempotent(db: Database) -> None:
    await db.migrate()  # second run: nothing to do, no error
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert version is not None


async def test_models_match_the_migrations(db: Database) -> None:
    """Autogenerate against the migrated schema finds nothing: no change lacks a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        return compare_metadata(ctx, Base.metadata)

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []
