"""upstream files (verified pull-through index, first used by Maven)

Revision ID: 0004_maven
Revises: 0003_oci
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_maven"
down_revision: str | None = "0004_npm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upstream_files",
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=4096), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("hashes", sa.JSON(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url_hash"),
    )
    with op.batch_alter_table("upstream_files", schema=None) as batch_op:
        batch_op.create_index("ix_upstream_files_digest", ["digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upstream_files", schema=None) as batch_op:
        batch_op.drop_index("ix_upstream_files_digest")
    op.drop_table("upstream_files")
