"""library_entries: source, source_version (the OS source package advisories name)

Debian, Ubuntu and Alpine advisories name the source package (`curl`), while clients download
binary packages (`libcurl4`); entries recorded before this revision get their source on their
next download.

Revision ID: 0010_library_source
Revises: 0009_oci_uploads
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_library_source"
down_revision: str | None = "0009_oci_uploads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("source_version", sa.String(length=255), nullable=True))
        batch_op.create_index(
            "ix_library_org_ecosystem_source", ["org_id", "ecosystem", "source"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_library_org_ecosystem_source")
        batch_op.drop_column("source_version")
        batch_op.drop_column("source")
