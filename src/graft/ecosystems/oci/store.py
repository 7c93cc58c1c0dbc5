"""What the registry knows, in the database: repositories, manifests, tags, blob links.

Manifest bytes and blobs are in the blob store; these tables say which repository holds what.
Reads on the pull path go through a short in-memory cache (`ManifestCache`), so a warm manifest
GET costs no query; every write in this process drops the entries it changes, and other
processes see a change within `CACHE_SECONDS` (plus the one query that refreshes the entry).
An expired entry keeps answering while a single background query refreshes it: without that,
every request that arrived in the same instant queried the database at once each time the
entry expired, which showed as the tail latency of manifest GETs under load.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from graft.cluster import announce
from graft.db import Database
from graft.db.models import (
    CatalogArtifact,
    OciBlobLink,
    OciGcCandidate,
    OciManifest,
    OciReference,
    OciRepository,
    OciTag,
    UpstreamFile,
    UpstreamPage,
    utcnow,
)
from graft.ecosystems.oci.manifests import ParsedManifest
from graft.singleflight import SingleFlight

CACHE_SECONDS = 2.0
log = logging.getLogger("graft.oci")


def org_space(org_id: int) -> str:
    return f"org:{org_id}"


def upstream_space(name: str) -> str:
    return f"upstream:{name}"


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    subject: str | None
    annotations: dict[str, str] | None


@dataclass(slots=True)
class _Cached:
    value: Any
    expires: float


class ManifestCache:
    """(repository id, tag or digest) → ManifestInfo or None, for CACHE_SECONDS."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: OrderedDict[tuple[int, str], _Cached] = OrderedDict()
        self.max_entries = max_entries
        self.generation = 0

    def get(self, key: tuple[int, str]) -> _Cached | None:
        """The entry, expired or not (see `_Cached.expires`); None if absent."""
        return self._entries.get(key)

    def put(self, key: tuple[int, str], value: Any) -> None:
        self._entries[key] = _Cached(value, time.monotonic() + CACHE_SECONDS)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def on_announced(self, payload: dict[str, Any] | None) -> None:
        """A manifest or tag change announced by any replica (None: drop everything)."""
        repository = payload.get("repo") if payload else None
        if isinstance(repository, int):
            self.drop_repository(repository)
        else:
            self._entries.clear()

    def drop_repository(self, repository_id: int) -> None:
        self.generation += 1  # a query that started before this write must not be cached
        for key in [k for k in self._entries if k[0] == repository_id]:
            del self._entries[key]


def _info(m: OciManifest) -> ManifestInfo:
    return ManifestInfo(m.digest, m.media_type, m.size, m.artifact_type, m.subject, m.annotations)


class MetaStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache = ManifestCache()
        self._refreshes: SingleFlight[ManifestInfo | None] = SingleFlight()
        self._background: set[asyncio.Task[Any]] = set()
        self._repo_ids: dict[tuple[str, str], int] = {}

    def _insert(self) -> Any:
        return postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert

    # --- repositories ---------------------------------------------------------------------

    async def repository_id(self, space: str, name: str, *, create: bool = False) -> int | None:
        key = (space, name)
        found = self._repo_ids.get(key)
        if found is not None:
            return found
        async with self.db.session() as s:
            found = await s.scalar(
                select(OciRepository.id).where(
                    OciRepository.space == space, OciRepository.name == name
                )
            )
            if found is None and create:
                stmt = (
                    self._insert()(OciRepository)
                    .values(space=space, name=name, created_at=utcnow())
                    .on_conflict_do_nothing()
                )
                await s.execute(stmt)
                found = await s.scalar(
                    select(OciRepository.id).where(
                        OciRepository.space == space, OciRepository.name == name
                    )
                )
        if found is not None:
            self._repo_ids[key] = found
        return found

    async def repositories(self, space: str) -> list[str]:
        """Names in `space` that hold at least one manifest or tag, sorted."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(OciRepository.name)
                .where(
                    OciRepository.space == space,
                    exists().where(OciManifest.repository_id == OciRepository.id),
                )
                .order_by(OciRepository.name)
            )
            return list(rows)

    async def has_manifests(self, repository_id: int) -> bool:
        async with self.db.session() as s:
            found = await s.scalar(
                select(OciManifest.id).where(OciManifest.repository_id == repository_id).limit(1)
            )
        return found is not None

    # --- manifests and tags -----------------------------------------------------------------

    async def resolve(self, repository_id: int, reference: str) -> ManifestInfo | None:
        """The manifest a tag or digest names in a repository (cached)."""
        key = (repository_id, reference)
        hit = self.cache.get(key)
        if hit is None:
            return await self._refreshes.do(key, lambda: self._resolve(key))
        if hit.expires < time.monotonic() and not self._refreshes.running(key):
            task = asyncio.create_task(self._refreshes.do(key, lambda: self._resolve(key)))
            self._background.add(task)
            task.add_done_callback(self._background_done)
        value: ManifestInfo | None = hit.value
        return value

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the entry stays expired, so the next request tries again
            log.warning("refreshing a cached manifest failed: %s", task.exception())

    async def _resolve(self, key: tuple[int, str]) -> ManifestInfo | None:
        generation = self.cache.generation
        info = await self._query_manifest(*key)
        if self.cache.generation == generation:  # no write in this process raced the query
            self.cache.put(key, info)
        return info

    async def _query_manifest(self, repository_id: int, reference: str) -> ManifestInfo | None:
        async with self.db.session() as s:
            if ":" in reference:
                query = select(OciManifest).where(
                    OciManifest.repository_id == repository_id, OciManifest.digest == reference
                )
            else:
                query = (
                    select(OciManifest)
                    .join(
                        OciTag,
                        and_(
                            OciTag.repository_id == OciManifest.repository_id,
                            OciTag.digest == OciManifest.digest,
                        ),
                    )
                    .where(OciTag.repository_id == repository_id, OciTag.name == reference)
                )
            row = await s.scalar(query)
        return _info(row) if row is not None else None

    async def tag_checked(self, repository_id: int, tag: str) -> tuple[str, dt.datetime] | None:
        """(digest, updated_at) of a tag: for upstream revalidation."""
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(OciTag.digest, OciTag.updated_at).where(
                        OciTag.repository_id == repository_id, OciTag.name == tag
                    )
                )
            ).first()
        return (row[0], row[1]) if row is not None else None

    async def missing_references(self, repository_id: int, parsed: ParsedManifest) -> str | None:
        """The first blob or child manifest of `parsed` that the repository lacks."""
        blobs = [d.digest for d in parsed.blobs]
        children = [d.digest for d in parsed.manifests]
        async with self.db.session() as s:
            if blobs:
                held = set(
                    await s.scalars(
                        select(OciBlobLink.digest).where(
                            OciBlobLink.repository_id == repository_id,
                            OciBlobLink.digest.in_(blobs),
                        )
                    )
                )
                for digest in blobs:
                    if digest not in held:
                        return digest
            if children:
                held = set(
                    await s.scalars(
                        select(OciManifest.digest).where(
                            OciManifest.repository_id == repository_id,
                            OciManifest.digest.in_(children),
                        )
                    )
                )
                for digest in children:
                    if digest not in held:
                        return digest
        return None

    async def put_manifest(
        self,
        repository_id: int,
        digest: str,
        size: int,
        parsed: ParsedManifest,
        tag: str | None,
    ) -> None:
        now = utcnow()
        async with self.db.session() as s:
            manifest_id = await s.scalar(
                select(OciManifest.id).where(
                    OciManifest.repository_id == repository_id, OciManifest.digest == digest
                )
            )
            if manifest_id is None:
                stmt = (
                    self._insert()(OciManifest)
                    .values(
                        repository_id=repository_id,
                        digest=digest,
                        media_type=parsed.media_type,
                        artifact_type=parsed.artifact_type,
                        subject=parsed.subject,
                        size=size,
                        annotations=parsed.annotations,
                        created_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(OciManifest.id)
                )
                manifest_id = await s.scalar(stmt)
                if manifest_id is not None and parsed.references:
                    await s.execute(
                        self._insert()(OciReference)
                        .values(
                            [{"manifest_id": manifest_id, "digest": d} for d in parsed.references]
                        )
                        .on_conflict_do_nothing()
                    )
            # The manifest bytes are a blob too: never collected while a manifest uses them.
            await s.execute(delete(OciGcCandidate).where(OciGcCandidate.digest == digest))
            if tag is not None:
                ins = self._insert()(OciTag).values(
                    repository_id=repository_id, name=tag, digest=digest, updated_at=now
                )
                await s.execute(
                    ins.on_conflict_do_update(
                        index_elements=[OciTag.repository_id, OciTag.name],
                        set_={"digest": ins.excluded.digest, "updated_at": ins.excluded.updated_at},
                    )
                )
            await announce(s, "oci", {"repo": repository_id})
        self.cache.drop_repository(repository_id)

    async def touch_tag(self, repository_id: int, tag: str) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(OciTag)
                .where(OciTag.repository_id == repository_id, OciTag.name == tag)
                .values(updated_at=utcnow())
            )

    async def delete_manifest(self, repository_id: int, digest: str) -> bool:
        """Remove a manifest and every tag naming it; its blobs become GC candidates."""
        async with self.db.session() as s:
            manifest_id = await s.scalar(
                select(OciManifest.id).where(
                    OciManifest.repository_id == repository_id, OciManifest.digest == digest
                )
            )
            if manifest_id is None:
                return False
            refs = list(
                await s.scalars(
                    select(OciReference.digest).where(OciReference.manifest_id == manifest_id)
                )
            )
            await s.execute(
                delete(OciTag).where(OciTag.repository_id == repository_id, OciTag.digest == digest)
            )
            await s.execute(delete(OciReference).where(OciReference.manifest_id == manifest_id))
            await s.execute(delete(OciManifest).where(OciManifest.id == manifest_id))
            await self._mark(s, [digest, *refs])
            await announce(s, "oci", {"repo": repository_id})
        self.cache.drop_repository(repository_id)
        return True

    async def delete_tag(self, repository_id: int, tag: str) -> bool:
        async with self.db.session() as s:
            result = await s.execute(
                delete(OciTag).where(OciTag.repository_id == repository_id, OciTag.name == tag)
            )
            await announce(s, "oci", {"repo": repository_id})
        self.cache.drop_repository(repository_id)
        return bool(getattr(result, "rowcount", 0))

    async def tags(self, repository_id: int) -> list[str]:
        async with self.db.session() as s:
            return list(
                await s.scalars(
                    select(OciTag.name)
                    .where(OciTag.repository_id == repository_id)
                    .order_by(OciTag.name)
                )
            )

    async def referrers(self, repository_id: int, subject: str) -> list[ManifestInfo]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(OciManifest)
                .where(OciManifest.repository_id == repository_id, OciManifest.subject == subject)
                .order_by(OciManifest.id)
            )
            return [_info(r) for r in rows]

    # --- blob links -----------------------------------------------------------------------

    async def link(self, repository_id: int, digest: str, size: int = 0) -> None:
        """Record that a repository holds a blob, before (or as) its bytes are stored: the
        candidate row is removed in the same transaction, which is what stops a concurrent
        garbage collection from deleting the blob (see gc.py)."""
        now = utcnow()
        async with self.db.session() as s:
            ins = self._insert()(OciBlobLink).values(
                repository_id=repository_id, digest=digest, size=size, touched_at=now
            )
            await s.execute(
                ins.on_conflict_do_update(
                    index_elements=[OciBlobLink.repository_id, OciBlobLink.digest],
                    set_={"touched_at": now},
                )
            )
            await s.execute(delete(OciGcCandidate).where(OciGcCandidate.digest == digest))

    async def set_link_size(self, repository_id: int, digest: str, size: int) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(OciBlobLink)
                .where(OciBlobLink.repository_id == repository_id, OciBlobLink.digest == digest)
                .values(size=size)
            )

    async def has_blob(self, repository_id: int, digest: str, *, touch: bool = False) -> bool:
        """Whether the repository holds the blob; `touch` (a pusher asking) keeps it from
        garbage collection for another grace period."""
        async with self.db.session() as s:
            if touch:
                result = await s.execute(
                    update(OciBlobLink)
                    .where(OciBlobLink.repository_id == repository_id, OciBlobLink.digest == digest)
                    .values(touched_at=utcnow())
                )
                return bool(getattr(result, "rowcount", 0))
            found = await s.scalar(
                select(OciBlobLink.digest).where(
                    OciBlobLink.repository_id == repository_id, OciBlobLink.digest == digest
                )
            )
            return found is not None

    async def unlink(self, repository_id: int, digest: str) -> bool:
        async with self.db.session() as s:
            result = await s.execute(
                delete(OciBlobLink).where(
                    OciBlobLink.repository_id == repository_id, OciBlobLink.digest == digest
                )
            )
            removed = bool(getattr(result, "rowcount", 0))
            if removed:
                await self._mark(s, [digest])
        return removed

    async def _mark(self, s: AsyncSession, digests: Sequence[str]) -> None:
        if not digests:
            return
        now = utcnow()
        await s.execute(
            self._insert()(OciGcCandidate)
            .values([{"digest": d, "marked_at": now} for d in dict.fromkeys(digests)])
            .on_conflict_do_nothing()
        )

    # --- garbage collection ---------------------------------------------------------------

    async def unlink_unreferenced(self, older_than: dt.datetime) -> int:
        """Drop links to blobs that no manifest of their repository uses and that no pusher
        asked for since `older_than`; the blobs become candidates."""
        async with self.db.session() as s:
            referenced = (
                select(OciReference.digest)
                .join(OciManifest, OciManifest.id == OciReference.manifest_id)
                .where(
                    OciManifest.repository_id == OciBlobLink.repository_id,
                    OciReference.digest == OciBlobLink.digest,
                )
                .exists()
            )
            rows = (
                await s.execute(
                    select(OciBlobLink.repository_id, OciBlobLink.digest).where(
                        OciBlobLink.touched_at < older_than, ~referenced
                    )
                )
            ).all()
            removed = 0
            for repository_id, digest in rows:
                result = await s.execute(
                    delete(OciBlobLink).where(
                        OciBlobLink.repository_id == repository_id,
                        OciBlobLink.digest == digest,
                        OciBlobLink.touched_at < older_than,
                    )
                )
                if getattr(result, "rowcount", 0):
                    removed += 1
                    await self._mark(s, [digest])
            return removed

    async def candidates(self, older_than: dt.datetime, limit: int = 1000) -> list[str]:
        async with self.db.session() as s:
            return list(
                await s.scalars(
                    select(OciGcCandidate.digest)
                    .where(OciGcCandidate.marked_at < older_than)
                    .limit(limit)
                )
            )

    async def collect(self, digest: str, remove: Any) -> bool:
        """Claim one candidate and, if nothing uses the digest any more, call `remove(digest)`
        inside the same transaction. A link made meanwhile deletes the same candidate row, so
        the two serialise on it (a row lock on PostgreSQL, the write lock on SQLite)."""
        async with self.db.session() as s:
            claimed = await s.execute(delete(OciGcCandidate).where(OciGcCandidate.digest == digest))
            if not getattr(claimed, "rowcount", 0):
                return False
            in_use = await s.scalar(
                select(
                    exists().where(OciBlobLink.digest == digest)
                    | exists().where(OciManifest.digest == digest)
                    | exists().where(OciReference.digest == digest)
                    | exists().where(CatalogArtifact.digest == digest)
                    | exists().where(UpstreamPage.digest == digest)
                    | exists().where(UpstreamFile.digest == digest)
                )
            )
            if in_use:
                return False
            await remove(digest)
            return True
