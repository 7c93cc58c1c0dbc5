"""oci_uploads, oci_upload_chunks: chunked blob upload sessions every replica sees

Revision ID: 0009_oci_uploads
Revises: 0008_library_due_index
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_oci_uploads"
down_revision: str | None = "0008_library_due_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oci_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("space", sa.String(length=80), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("oci_uploads", schema=None) as batch_op:
        batch_op.create_index("ix_oci_upload_updated", ["updated_at"], unique=False)
    op.create_table(
        "oci_upload_chunks",
        sa.Column("upload_id", sa.String(length=32), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["oci_uploads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("upload_id", "offset"),
    )


def downgrade() -> None:
    op.drop_table("oci_upload_chunks")
    op.drop_table("oci_uploads")
