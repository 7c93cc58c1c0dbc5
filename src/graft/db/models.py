"""Tables of the core: organizations, accounts, tokens and the per-organization library.

Ecosystems add their own tables in their own modules (and migrations); these are the ones every
ecosystem relies on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on both backends (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(
        self, value: dt.datetime | None, dialect: object
    ) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    accounts: Mapped[list[Account]] = relationship(back_populates="organization")


class Account(Base):
    """A person (`user`) or a CI identity (`service`) inside one organization."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "user" | "service"
    # May manage every organization (create orgs); only given by the CLI.
    site_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="accounts")
    tokens: Mapped[list[Token]] = relationship(back_populates="account")


class Token(Base):
    """A registry token. Only its SHA-256 is stored; `prefix` is kept to recognise it in lists."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(64))  # space separated: read publish admin
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set on the old token when it is rotated: the token that replaces it.
    replaced_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("tokens.id", ondelete="SET NULL"), nullable=True
    )

    account: Mapped[Account] = relationship(back_populates="tokens")


class LibraryEntry(Base):
    """What an organization installed: one row per (ecosystem, distribution, package, version,
    how it was served). Written in batches by `graft.usage`."""

    __tablename__ = "library_entries"
    __table_args__ = (
        UniqueConstraint(
            "org_id",
            "ecosystem",
            "distribution",
            "package",
            "version",
            "served",
            name="uq_library_entry",
        ),
        Index("ix_library_org_ecosystem_package", "org_id", "ecosystem", "package"),
        Index("ix_library_org_ecosystem_source", "org_id", "ecosystem", "source"),
        Index("ix_library_org_last_seen", "org_id", "last_seen"),
        Index("ix_library_org_severity", "org_id", "severity"),
        # due entries (status NULL) of one organization, in the order refresh takes them
        Index("ix_library_due", "status", "org_id", "ecosystem", "package", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    ecosystem: Mapped[str] = mapped_column(String(32))
    distribution: Mapped[str] = mapped_column(String(64), default="")  # e.g. "bookworm", "3.20"
    package: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    # OS packages: the source package (and its version, when a binNMU's differs) that Debian,
    # Ubuntu and Alpine advisories name; NULL when it is the package itself.
    source: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_version: Mapped[str | None] = mapped_column(String(255), nullable=True)
    served: Mapped[str] = mapped_column(String(16))  # upstream | patched | fallback | private
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    # Vulnerability status, computed in the background by `graft.vulns.status` (NULL: not yet,
    # or to be computed again after an import or a publish). Kept on the row so that the
    # library can be filtered and sorted by it.
    status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    critical: Mapped[int] = mapped_column(Integer, default=0)  # unfixed critical advisories
    high: Mapped[int] = mapped_column(Integer, default=0)  # unfixed high advisories
    severity: Mapped[int] = mapped_column(Integer, default=0)  # highest unfixed level's rank
    advisories: Mapped[int] = mapped_column(Integer, default=0)  # unfixed advisories
    patched_version: Mapped[str | None] = mapped_column(String(255), nullable=True)


class UsageDay(Base):
    """Installs per organization, day, ecosystem and how they were served: the history behind
    "share of installs served as patched builds" (library entries keep only totals)."""

    __tablename__ = "usage_days"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    ecosystem: Mapped[str] = mapped_column(String(32), primary_key=True)
    served: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class LibraryEntryAccount(Base):
    """Which accounts installed a library entry, and when last."""

    __tablename__ = "library_entry_accounts"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("library_entries.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class UpstreamRecord(Base):
    """An upstream added with `graft upstream add` (those in graft.toml are not stored)."""

    __tablename__ = "upstreams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ecosystem: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    token: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    ttl_seconds: Mapped[int] = mapped_column(Integer, default=600)
    negative_ttl_seconds: Mapped[int] = mapped_column(Integer, default=60)
    keyring: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamPage(Base):
    """Last good copy of an upstream index page: body in the blob store, validators here, so a
    restart can revalidate instead of refetching and serve it while the upstream is down."""

    __tablename__ = "upstream_pages"

    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(4096))
    status: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    content_type: Mapped[str] = mapped_column(String(255), default="")
    etag: Mapped[str | None] = mapped_column(String(512), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CatalogArtifact(Base):
    """A file an organization published: a patched build of an upstream version, or a private
    package. `package` is the ecosystem's normalized name."""

    __tablename__ = "catalog_artifacts"
    __table_args__ = (
        UniqueConstraint("org_id", "ecosystem", "filename", name="uq_catalog_file"),
        Index("ix_catalog_org_ecosystem_package", "org_id", "ecosystem", "package"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    ecosystem: Mapped[str] = mapped_column(String(32))
    package: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    upstream_version: Mapped[str | None] = mapped_column(String(255), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # patched | private
    filename: Mapped[str] = mapped_column(String(512))
    digest: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    fixes: Mapped[list[str]] = mapped_column(JSON, default=list)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True
    )


class UpstreamFile(Base):
    """An upstream file Graft pulled through and verified, by URL: where its bytes are (blob
    digest) and the checksums computed while verifying, for indexes (Maven's `.sha1` files)
    that name a file by another digest than sha256."""

    __tablename__ = "upstream_files"
    __table_args__ = (Index("ix_upstream_files_digest", "digest"),)  # "is this blob in use?"

    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(4096))
    digest: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    hashes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# --- container images (graft.ecosystems.oci) -------------------------------------------------
# A repository lives in a "space": "org:<id>" for what an organization pushed, "upstream:<name>"
# for what was pulled through from an upstream registry (shared by every organization, since it
# is the upstream's public content). Manifest bytes and blobs live in the blob store.


class OciRepository(Base):
    __tablename__ = "oci_repositories"
    __table_args__ = (UniqueConstraint("space", "name", name="uq_oci_repository"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OciManifest(Base):
    """A manifest held in a repository (stored byte for byte under its digest)."""

    __tablename__ = "oci_manifests"
    __table_args__ = (
        UniqueConstraint("repository_id", "digest", name="uq_oci_manifest"),
        Index("ix_oci_manifest_subject", "repository_id", "subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("oci_repositories.id", ondelete="CASCADE")
    )
    digest: Mapped[str] = mapped_column(String(140))
    media_type: Mapped[str] = mapped_column(String(255))
    artifact_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(140), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    annotations: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OciTag(Base):
    __tablename__ = "oci_tags"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("oci_repositories.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[str] = mapped_column(String(140))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OciReference(Base):
    """What a manifest points at (config, layers, child manifests): kept for garbage
    collection and for refusing to delete nothing-but-referenced content."""

    __tablename__ = "oci_references"
    __table_args__ = (Index("ix_oci_reference_digest", "digest"),)

    manifest_id: Mapped[int] = mapped_column(
        ForeignKey("oci_manifests.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(String(140), primary_key=True)


class OciBlobLink(Base):
    """A blob a repository holds: pushed, mounted or pulled through. `touched_at` moves when a
    pusher asks for the blob, so garbage collection leaves blobs of a running push alone."""

    __tablename__ = "oci_blob_links"
    __table_args__ = (Index("ix_oci_blob_link_digest", "digest"),)

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("oci_repositories.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(String(140), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    touched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OciGcCandidate(Base):
    """A blob that lost a link or a reference; garbage collection deletes it once nothing in
    any repository (nor any other ecosystem) uses it."""

    __tablename__ = "oci_gc_candidates"

    digest: Mapped[str] = mapped_column(String(140), primary_key=True)
    marked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OciUpload(Base):
    """A chunked blob upload in progress, seen by every replica. `size` is the offset the next
    chunk must start at; it only moves by compare-and-set (`UPDATE … WHERE size = :expected`)
    in the transaction that records the chunk. The bytes are scratch objects of the blob store
    (area "oci-uploads")."""

    __tablename__ = "oci_uploads"
    __table_args__ = (Index("ix_oci_upload_updated", "updated_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    space: Mapped[str] = mapped_column(String(80))
    repository: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OciUploadChunk(Base):
    """One accepted chunk of an upload: bytes [offset, offset + size) in the scratch object
    `name` (unique per attempt, so a losing concurrent chunk never overwrites the winner)."""

    __tablename__ = "oci_upload_chunks"

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("oci_uploads.id", ondelete="CASCADE"), primary_key=True
    )
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(100))


class CatalogTag(Base):
    """A named pointer to one of a package's versions, set by the organization (npm dist-tags
    such as `latest` or `next`). Per (organization, ecosystem, package, tag)."""

    __tablename__ = "catalog_tags"
    __table_args__ = (
        UniqueConstraint("org_id", "ecosystem", "package", "tag", name="uq_catalog_tag"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    ecosystem: Mapped[str] = mapped_column(String(32))
    package: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamArtifact(Base):
    """An upstream file verified by a digest other than sha256 (npm's sha512 `integrity`):
    which blob holds it, so that it is pulled through once, not once per process."""

    __tablename__ = "upstream_artifacts"

    alias: Mapped[str] = mapped_column(String(160), primary_key=True)  # e.g. sha512:<hex>
    digest: Mapped[str] = mapped_column(String(80))  # the blob, sha256:<hex>
    size: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- advisories and package requests (graft.vulns) -------------------------------------------


class Advisory(Base):
    """One OSV record (the OSV schema), imported by `graft vulns import`."""

    __tablename__ = "advisories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    osv_id: Mapped[str] = mapped_column(String(128), unique=True)
    modified: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(String(1024), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    severity_vector: Mapped[str | None] = mapped_column(String(255), nullable=True)
    severity_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    severity_level: Mapped[str] = mapped_column(String(16), default="unknown")
    references: Mapped[list[str]] = mapped_column(JSON, default=list)


class AdvisoryAffected(Base):
    """One `affected` entry of an advisory, under Graft's ecosystem names: `distribution` is
    the library's (e.g. `bookworm` for `Debian:12`), empty when the record names none."""

    __tablename__ = "advisory_affected"
    __table_args__ = (Index("ix_advisory_affected_package", "ecosystem", "package"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advisory_id: Mapped[int] = mapped_column(ForeignKey("advisories.id", ondelete="CASCADE"))
    ecosystem: Mapped[str] = mapped_column(String(32))
    distribution: Mapped[str] = mapped_column(String(64), default="")
    package: Mapped[str] = mapped_column(String(255))
    ranges: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    versions: Mapped[list[str]] = mapped_column(JSON, default=list)


class PackageRequest(Base):
    """An organization asking for a patched build: open → in progress → published | declined."""

    __tablename__ = "package_requests"
    __table_args__ = (Index("ix_package_requests_org_status", "org_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    ecosystem: Mapped[str] = mapped_column(String(32))
    package: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_version: Mapped[str | None] = mapped_column(String(255), nullable=True)


# --- web app sessions (graft.web) ------------------------------------------------------------


class WebSession(Base):
    """A browser session, made by signing in with a token: valid while the token is (revoking
    the token ends its sessions) and until `expires_at`; signing out deletes the row. Only the
    SHA-256 of the cookie value is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))  # the form token every POST must carry
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
