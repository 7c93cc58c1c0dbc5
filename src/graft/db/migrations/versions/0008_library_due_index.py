"""library_entries: ix_library_due replaces ix_library_status

The probe for due entries before each library query (status IS NULL, in package order) read
the organization's whole library with the status-only index.

Revision ID: 0008_library_due_index
Revises: 0007_web
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_library_due_index"
down_revision: str | None = "0007_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_library_status")
        batch_op.create_index(
            "ix_library_due", ["status", "org_id", "ecosystem", "package", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_library_due")
        batch_op.create_index("ix_library_status", ["status"], unique=False)
