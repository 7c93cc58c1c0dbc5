"""container image registry (oci)

Revision ID: 0003_oci
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_oci"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oci_repositories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("space", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("space", "name", name="uq_oci_repository"),
    )
    op.create_table(
        "oci_gc_candidates",
        sa.Column("digest", sa.String(length=140), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "oci_manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=140), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.Column("artifact_type", sa.String(length=255), nullable=True),
        sa.Column("subject", sa.String(length=140), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["oci_repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "digest", name="uq_oci_manifest"),
    )
    with op.batch_alter_table("oci_manifests", schema=None) as batch_op:
        batch_op.create_index("ix_oci_manifest_subject", ["repository_id", "subject"])
    op.create_table(
        "oci_tags",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=140), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["oci_repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repository_id", "name"),
    )
    op.create_table(
        "oci_blob_links",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=140), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["oci_repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repository_id", "digest"),
    )
    with op.batch_alter_table("oci_blob_links", schema=None) as batch_op:
        batch_op.create_index("ix_oci_blob_link_digest", ["digest"])
    op.create_table(
        "oci_references",
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=140), nullable=False),
        sa.ForeignKeyConstraint(["manifest_id"], ["oci_manifests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("manifest_id", "digest"),
    )
    with op.batch_alter_table("oci_references", schema=None) as batch_op:
        batch_op.create_index("ix_oci_reference_digest", ["digest"])


def downgrade() -> None:
    op.drop_table("oci_references")
    op.drop_table("oci_blob_links")
    op.drop_table("oci_tags")
    op.drop_table("oci_manifests")
    op.drop_table("oci_gc_candidates")
    op.drop_table("oci_repositories")
