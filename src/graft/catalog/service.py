"""The catalog: files an organization published (patched builds and private packages).

Lookups are per (organization, ecosystem, package) and are cached in memory for
`cache_seconds`; a change invalidates the entry at once in this process and, through the
cluster channel (graft.cluster, PostgreSQL), in every other replica. Index pages and downloads
therefore cost no database query while the entry is warm.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from graft.cluster import announce
from graft.db import Database
from graft.db.models import CatalogArtifact, CatalogTag
from graft.errors import Conflict, InvalidInput
from graft.singleflight import SingleFlight

Kind = Literal["patched", "private"]
# CVE-2024-1234, GHSA-xxxx-xxxx-xxxx, PYSEC-2023-1, DSA-5555-1, ALPINE-…: an advisory id.
ADVISORY_ID = re.compile(r"^[A-Z][A-Z0-9]{1,15}-[A-Za-z0-9][A-Za-z0-9.:_-]{0,60}$")


def validate_fixes(fixes: list[str]) -> list[str]:
    out = []
    for raw in fixes:
        for item in raw.replace(",", " ").split():
            if not ADVISORY_ID.match(item):
                raise InvalidInput(
                    f"{item!r} is not an advisory id (expected e.g. CVE-2024-1234 or GHSA-…)"
                )
            if item not in out:
                out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class CatalogFile:
    id: int
    org_id: int
    ecosystem: str
    package: str
    version: str
    upstream_version: str | None
    kind: Kind
    filename: str
    digest: str
    size: int
    fixes: tuple[str, ...]
    attrs: dict[str, Any] = field(hash=False, compare=False)
    created_at: dt.datetime = field(compare=False)
    created_by: int | None = field(default=None, compare=False)  # account id


def _view(row: CatalogArtifact) -> CatalogFile:
    return CatalogFile(
        id=row.id,
        org_id=row.org_id,
        ecosystem=row.ecosystem,
        package=row.package,
        version=row.version,
        upstream_version=row.upstream_version,
        kind=row.kind,  # type: ignore[arg-type]
        filename=row.filename,
        digest=row.digest,
        size=row.size,
        fixes=tuple(row.fixes or ()),
        attrs=dict(row.attrs or {}),
        created_at=row.created_at,
        created_by=row.created_by,
    )


_Key = tuple[int, str, str]
log = logging.getLogger("graft.catalog")


def _message(org_id: int, ecosystem: str, package: str) -> dict[str, Any]:
    return {"org": org_id, "eco": ecosystem, "pkg": package}


class CatalogService:
    def __init__(self, db: Database, *, cache_seconds: float = 5.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[_Key, tuple[float, tuple[CatalogFile, ...]]] = {}
        self._flights: SingleFlight[tuple[CatalogFile, ...]] = SingleFlight()
        self._tags: dict[_Key, tuple[float, dict[str, str]]] = {}
        self._tag_flights: SingleFlight[dict[str, str]] = SingleFlight()
        #: called after a file is added or its fixes change (graft.vulns: status, requests)
        self.listeners: list[Callable[[CatalogFile], Awaitable[None]]] = []

    async def _notify(self, file: CatalogFile) -> None:
        for listener in self.listeners:
            try:
                await listener(file)
            except Exception:  # the publish is stored; the status is computed again later
                log.exception("catalog listener failed for %s", file.filename)

    async def files(self, org_id: int, ecosystem: str, package: str) -> tuple[CatalogFile, ...]:
        key = (org_id, ecosystem, package)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        return await self._flights.do(key, lambda: self._load(key))

    async def _load(self, key: _Key) -> tuple[CatalogFile, ...]:
        org_id, ecosystem, package = key
        query = select(CatalogArtifact).where(
            CatalogArtifact.org_id == org_id, CatalogArtifact.ecosystem == ecosystem
        )
        if package != "*":  # "*": the whole ecosystem (names never contain '*')
            query = query.where(CatalogArtifact.package == package)
        async with self.db.session() as s:
            rows = await s.scalars(query.order_by(CatalogArtifact.id))
            found = tuple(_view(r) for r in rows)
        self._cache[key] = (time.monotonic(), found)
        if len(self._cache) > 50_000:
            self._cache.clear()
        return found

    async def packages_files(self, org_id: int, ecosystem: str) -> tuple[CatalogFile, ...]:
        """Every file the organization published in an ecosystem (cached like `files`)."""
        key = (org_id, ecosystem, "*")
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        return await self._flights.do(key, lambda: self._load(key))

    async def packages(self, org_id: int, ecosystem: str) -> list[str]:
        """Every package name the organization published in an ecosystem."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(CatalogArtifact.package)
                .where(CatalogArtifact.org_id == org_id, CatalogArtifact.ecosystem == ecosystem)
                .distinct()
            )
            return sorted(rows)

    async def is_private(self, org_id: int, ecosystem: str, package: str) -> bool:
        return any(f.kind == "private" for f in await self.files(org_id, ecosystem, package))

    async def add(
        self,
        *,
        org_id: int,
        ecosystem: str,
        package: str,
        version: str,
        upstream_version: str | None,
        kind: Kind,
        filename: str,
        digest: str,
        size: int,
        fixes: list[str],
        attrs: dict[str, Any],
        created_by: int | None,
    ) -> CatalogFile:
        try:
            async with self.db.session() as s:
                row = CatalogArtifact(
                    org_id=org_id,
                    ecosystem=ecosystem,
                    package=package,
                    version=version,
                    upstream_version=upstream_version,
                    kind=kind,
                    filename=filename,
                    digest=digest,
                    size=size,
                    fixes=validate_fixes(fixes),
                    attrs=attrs,
                    created_by=created_by,
                    created_at=dt.datetime.now(dt.UTC),
                )
                s.add(row)
                await s.flush()
                view = _view(row)
                await announce(s, "catalog", _message(org_id, ecosystem, package))
        except IntegrityError:
            raise Conflict(
                f"{filename} already exists; published files cannot be replaced"
            ) from None
        self._drop(org_id, ecosystem, package)
        await self._notify(view)
        return view

    def _drop(self, org_id: int, ecosystem: str, package: str) -> None:
        self._cache.pop((org_id, ecosystem, package), None)
        self._cache.pop((org_id, ecosystem, "*"), None)
        self._tags.pop((org_id, ecosystem, package), None)

    def on_announced(self, payload: dict[str, Any] | None) -> None:
        """A change announced by any replica (None: drop everything, messages were missed)."""
        if payload is None:
            self._cache.clear()
            self._tags.clear()
            return
        try:
            self._drop(int(payload["org"]), str(payload["eco"]), str(payload["pkg"]))
        except (KeyError, TypeError, ValueError):
            self._cache.clear()
            self._tags.clear()

    # -- tags (npm dist-tags): tag -> version, per (organization, ecosystem, package) ----------
    async def tags(self, org_id: int, ecosystem: str, package: str) -> dict[str, str]:
        """The organization's tags for a package (cached like `files`; do not mutate)."""
        key = (org_id, ecosystem, package)
        hit = self._tags.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        return await self._tag_flights.do(key, lambda: self._load_tags(key))

    async def _load_tags(self, key: _Key) -> dict[str, str]:
        org_id, ecosystem, package = key
        async with self.db.session() as s:
            rows = await s.execute(
                select(CatalogTag.tag, CatalogTag.version).where(
                    CatalogTag.org_id == org_id,
                    CatalogTag.ecosystem == ecosystem,
                    CatalogTag.package == package,
                )
            )
            found = {tag: version for tag, version in rows}
        self._tags[key] = (time.monotonic(), found)
        if len(self._tags) > 50_000:
            self._tags.clear()
        return found

    async def set_tag(
        self, org_id: int, ecosystem: str, package: str, tag: str, version: str
    ) -> None:
        values = {
            "org_id": org_id,
            "ecosystem": ecosystem,
            "package": package,
            "tag": tag,
            "version": version,
            "updated_at": dt.datetime.now(dt.UTC),
        }
        ins = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        stmt = ins(CatalogTag).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["org_id", "ecosystem", "package", "tag"],
            set_={"version": version, "updated_at": values["updated_at"]},
        )
        async with self.db.session() as s:
            await s.execute(stmt)
            await announce(s, "catalog", _message(org_id, ecosystem, package))
        self._drop(org_id, ecosystem, package)

    async def remove_tag(self, org_id: int, ecosystem: str, package: str, tag: str) -> bool:
        async with self.db.session() as s:
            result = await s.execute(
                delete(CatalogTag).where(
                    CatalogTag.org_id == org_id,
                    CatalogTag.ecosystem == ecosystem,
                    CatalogTag.package == package,
                    CatalogTag.tag == tag,
                )
            )
            await announce(s, "catalog", _message(org_id, ecosystem, package))
        self._drop(org_id, ecosystem, package)
        return bool(getattr(result, "rowcount", 0))

    async def add_fixes(
        self, org_id: int, ecosystem: str, package: str, version: str, fixes: list[str]
    ) -> int:
        """Add advisories to every file of one published version (Maven declares them in the
        POM, which may arrive after the jar); returns how many files changed."""
        wanted = validate_fixes(fixes)
        changed = 0
        async with self.db.session() as s:
            rows = await s.scalars(
                select(CatalogArtifact).where(
                    CatalogArtifact.org_id == org_id,
                    CatalogArtifact.ecosystem == ecosystem,
                    CatalogArtifact.package == package,
                    CatalogArtifact.version == version,
                )
            )
            views = []
            for row in rows:
                merged = list(row.fixes or [])
                merged += [f for f in wanted if f not in merged]
                if merged != list(row.fixes or []):
                    row.fixes = merged
                    changed += 1
                    views.append(_view(row))
            if changed:
                await announce(s, "catalog", _message(org_id, ecosystem, package))
        self._drop(org_id, ecosystem, package)
        for view in views[:1]:
            await self._notify(view)
        return changed

    async def remove(self, org_id: int, ecosystem: str, file_id: int) -> bool:
        """Withdraw one file (an upload whose checksum turned out wrong); False if absent."""
        async with self.db.session() as s:
            row = await s.get(CatalogArtifact, file_id)
            if row is None or row.org_id != org_id or row.ecosystem != ecosystem:
                return False
            package = row.package
            await s.delete(row)
            await announce(s, "catalog", _message(org_id, ecosystem, package))
        self._drop(org_id, ecosystem, package)
        return True
