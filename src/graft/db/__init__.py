"""Database access: engine/session factory and Alembic migrations. Only this package (and
`blobs`) knows which backend is in use."""

from graft.db.engine import Database

__all__ = ["Database"]
