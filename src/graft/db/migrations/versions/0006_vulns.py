"""advisories (OSV), their affected packages, package requests; status on library entries

Revision ID: 0006_vulns
Revises: 0005_maven
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_vulns"
down_revision: str | None = "0005_maven"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUS_COLUMNS = ("critical", "high", "severity", "advisories")


def upgrade() -> None:
    op.create_table(
        "advisories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("osv_id", sa.String(length=128), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn", sa.DateTime(timezone=True), nullable=True),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("summary", sa.String(length=1024), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("severity_vector", sa.String(length=255), nullable=True),
        sa.Column("severity_score", sa.Float(), nullable=True),
        sa.Column("severity_level", sa.String(length=16), nullable=False),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("osv_id"),
    )
    op.create_table(
        "advisory_affected",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("advisory_id", sa.Integer(), nullable=False),
        sa.Column("ecosystem", sa.String(length=32), nullable=False),
        sa.Column("distribution", sa.String(length=64), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("ranges", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["advisory_id"], ["advisories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("advisory_affected", schema=None) as batch_op:
        batch_op.create_index(
            "ix_advisory_affected_package", ["ecosystem", "package"], unique=False
        )
    op.create_table(
        "package_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("ecosystem", sa.String(length=32), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_version", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("package_requests", schema=None) as batch_op:
        batch_op.create_index("ix_package_requests_org_status", ["org_id", "status"], unique=False)
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=24), nullable=True))
        for name in _STATUS_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("patched_version", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_library_org_last_seen", ["org_id", "last_seen"], unique=False)
        batch_op.create_index("ix_library_org_severity", ["org_id", "severity"], unique=False)
        batch_op.create_index(
            "ix_library_due", ["status", "org_id", "ecosystem", "package", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_library_due")
        batch_op.drop_index("ix_library_org_severity")
        batch_op.drop_index("ix_library_org_last_seen")
        batch_op.drop_column("patched_version")
        for name in _STATUS_COLUMNS:
            batch_op.drop_column(name)
        batch_op.drop_column("status")
    with op.batch_alter_table("package_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_package_requests_org_status")
    op.drop_table("package_requests")
    with op.batch_alter_table("advisory_affected", schema=None) as batch_op:
        batch_op.drop_index("ix_advisory_affected_package")
    op.drop_table("advisory_affected")
    op.drop_table("advisories")
