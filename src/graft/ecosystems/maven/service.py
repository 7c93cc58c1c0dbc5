"""The Maven overlay: the organization's deployed files over verified upstream repositories.

Small sources, each cached in memory so a warm request costs no database query and no
upstream request:
- the organization's catalog files per `groupId:artifactId` (graft.catalog);
- upstream `maven-metadata.xml` pages (graft.upstream.pages: TTL, revalidation, stale copies,
  negative cache), parsed once per page identity;
- upstream files: the `.sha1` each upstream publishes (a page, negative-cached, so probing
  several upstreams for a missing file costs one request each per minute), the verified
  pull-through (graft.upstream.files) and `FileIndex` (URL → blob and checksums);
- the rendered `maven-metadata.xml` per (organization, directory), keyed by the identities of
  its inputs, with its ETag and checksums.

Upstreams are asked in priority order. A file comes from the first upstream that publishes a
checksum for it; metadata is merged from every upstream that has it (as a repository group
does). A `groupId:artifactId` with a private file is never looked up upstream at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response

from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.maven import checksums, layout, versions
from graft.ecosystems.maven import metadata as mdata
from graft.errors import InvalidInput, NotFound
from graft.files import CACHE_CONTROL, serve_blob
from graft.upstream.config import UpstreamConfig
from graft.upstream.files import Fetched, OnStored, UpstreamMismatch
from graft.upstream.index import FileIndex, IndexedFile
from graft.upstream.pages import Page, UpstreamUnavailable

ECOSYSTEM = "maven"
ACCEPT_XML = "application/xml, text/xml;q=0.9, */*;q=0.1"
ACCEPT_TEXT = "text/plain, */*;q=0.1"
REVALIDATE = "private, max-age=0, must-revalidate"


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str
    hashes: dict[str, str]
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Located:
    """Where an upstream file is: the upstream, its URL, and what Graft knows of it."""

    upstream: UpstreamConfig
    url: str
    held: IndexedFile | None
    sha1: str | None  # from the upstream's .sha1, when not held


class MavenService:
    def __init__(self, ctx: AppContext, *, max_rendered: int = 8192) -> None:
        self.ctx = ctx
        self.index = FileIndex(ctx.db)
        self.max_rendered = max_rendered
        self._parsed: OrderedDict[str, tuple[str, mdata.Metadata | None]] = OrderedDict()
        self._rendered: OrderedDict[tuple[int, str], tuple[str, Rendered]] = OrderedDict()

    # -- the organization's files -----------------------------------------------------------
    async def local(self, org_id: int, package: str) -> tuple[CatalogFile, ...]:
        return await self.ctx.catalog.files(org_id, ECOSYSTEM, package)

    async def local_file(self, org_id: int, artifact: layout.Artifact) -> CatalogFile | None:
        path = artifact.path
        return next(
            (f for f in await self.local(org_id, artifact.package) if f.filename == path), None
        )

    # -- metadata ---------------------------------------------------------------------------
    async def upstream_metadata(
        self, directory: tuple[str, ...]
    ) -> list[tuple[Page, mdata.Metadata]]:
        """Every upstream's copy, in priority order. Raises UpstreamUnavailable when none has
        one and at least one could not answer."""
        found: list[tuple[Page, mdata.Metadata]] = []
        failure: UpstreamUnavailable | None = None
        rel = "/".join(directory) + "/" + layout.METADATA
        for upstream in await self.ctx.upstreams.for_ecosystem(ECOSYSTEM):
            try:
                page = await self.ctx.pages.get(upstream, upstream.url + rel, accept=ACCEPT_XML)
            except UpstreamUnavailable as exc:
                failure = failure or exc
                continue
            if page.found:
                parsed = self._parse(page)
                if parsed is not None:
                    found.append((page, parsed))
        if not found and failure is not None:
            raise failure
        return found

    def _parse(self, page: Page) -> mdata.Metadata | None:
        hit = self._parsed.get(page.url)
        if hit is not None and hit[0] == page.identity:
            return hit[1]
        try:
            parsed: mdata.Metadata | None = mdata.parse(page.body)
        except InvalidInput:
            parsed = None  # an upstream's broken metadata is left out, not served
        self._parsed[page.url] = (page.identity, parsed)
        if len(self._parsed) > 8192:
            self._parsed.popitem(last=False)
        return parsed

    async def metadata(self, org_id: int, directory: tuple[str, ...]) -> Rendered:
        if len(directory) >= 3 and versions.is_snapshot(directory[-1]):
            rendered = await self._snapshot_metadata(org_id, directory)
            if rendered is not None:
                return rendered
        group_id, artifact_id = layout.metadata_coordinates(directory)
        package = f"{group_id}:{artifact_id}"
        local = await self.local(org_id, package) if group_id else ()
        private = any(f.kind == "private" for f in local)
        stale = False
        try:
            sources = [] if private else await self.upstream_metadata(directory)
        except UpstreamUnavailable:
            if not local:
                raise
            sources, stale = [], True  # the organization's own versions are still served
        if not sources and not local:
            raise NotFound(
                f"{'/'.join(directory)}/{layout.METADATA} was not found in Graft or its "
                "upstream repositories"
            )
        stale = stale or any(page.stale for page, _ in sources)
        ident = "|".join(page.identity for page, _ in sources)
        ident += "|" + ",".join(str(f.id) for f in local)
        key = (org_id, "/".join(directory))
        hit = self._rendered.get(key)
        if hit is not None and hit[0] == ident:
            self._rendered.move_to_end(key)
            return replace(hit[1], stale=True) if stale else hit[1]
        own_versions = [f.version for f in local]
        newest = max((f.created_at for f in local), default=None)
        stamp = _stamp(newest) if newest else ""
        parsed = [m for _, m in sources]
        merged = mdata.merge(
            next((m.group_id for m in parsed if m.group_id), group_id if local else ""),
            next((m.artifact_id for m in parsed if m.artifact_id), artifact_id if local else ""),
            parsed,
            own_versions,
            stamp,
        )
        body = mdata.render(merged)
        rendered = Rendered(body, _etag(body), checksums.digests(body))
        self._rendered[key] = (ident, rendered)
        self._rendered.move_to_end(key)
        while len(self._rendered) > self.max_rendered:
            self._rendered.popitem(last=False)
        return replace(rendered, stale=True) if stale else rendered

    async def _snapshot_metadata(self, org_id: int, directory: tuple[str, ...]) -> Rendered | None:
        """A SNAPSHOT version the organization deployed: its builds, from the catalog (never
        mixed with an upstream's builds). None when the organization has none of it."""
        group_id, artifact_id, version = ".".join(directory[:-2]), directory[-2], directory[-1]
        everything = await self.local(org_id, f"{group_id}:{artifact_id}")
        local = [f for f in everything if f.version == version]
        if not local:
            if any(f.kind == "private" for f in everything):
                raise NotFound(f"{'/'.join(directory)}/{layout.METADATA} was not found")
            return None
        key = (org_id, "/".join(directory))
        ident = ",".join(str(f.id) for f in local)
        hit = self._rendered.get(key)
        if hit is not None and hit[0] == ident:
            return hit[1]
        builds: dict[tuple[str, str], tuple[tuple[int, str], mdata.SnapshotVersion]] = {}
        newest: tuple[int, str] = (0, "")
        for f in local:
            artifact = layout.parse_filename(
                group_id, artifact_id, version, f.filename.rsplit("/", 1)[-1]
            )
            build = artifact.snapshot_build
            number, stamp = (build[1], build[0]) if build else (0, "")
            updated = stamp.replace(".", "") if stamp else _stamp(f.created_at)
            entry = mdata.SnapshotVersion(
                artifact.classifier, artifact.extension, artifact.snapshot_value, updated
            )
            order = (number, stamp)
            key_ = (artifact.classifier, artifact.extension)
            if key_ not in builds or builds[key_][0] < order:
                builds[key_] = (order, entry)
            newest = max(newest, order)
        snapshot = mdata.Snapshot(newest[1], newest[0]) if newest[0] else None
        entries = tuple(e for _, e in builds.values())
        document = mdata.Metadata(
            group_id=group_id,
            artifact_id=artifact_id,
            version=version,
            last_updated=max(e.updated for e in entries),
            snapshot=snapshot,
            snapshot_versions=tuple(sorted(entries, key=lambda e: (e.extension, e.classifier))),
        )
        body = mdata.render(document)
        rendered = Rendered(body, _etag(body), checksums.digests(body))
        self._rendered[key] = (ident, rendered)
        return rendered

    async def upstream_versions(self, group_id: str, artifact_id: str) -> set[str] | None:
        """Versions the upstreams list for an artifact; None if no upstream has metadata."""
        found = await self.upstream_metadata((*group_id.split("."), artifact_id))
        if not found:
            return None
        return {v for _, m in found for v in m.versions}

    async def exists_upstream(self, group_id: str, artifact_id: str, version: str | None) -> bool:
        """Whether an upstream has the artifact (any version, or `version`): its metadata, or
        for repositories without metadata, the version's POM."""
        listed = await self.upstream_versions(group_id, artifact_id)
        if listed is not None:
            if version is None:
                return True
            wanted = versions.parse(version)
            if any(_same_version(v, wanted) for v in listed):
                return True
        if version is None:
            return False
        pom = layout.Artifact(
            group_id, artifact_id, version, f"{artifact_id}-{version}.pom", "", "pom"
        )
        return await self.locate(pom.path) is not None

    # -- upstream files ---------------------------------------------------------------------
    async def locate(self, path: str) -> Located | None:
        """The first upstream, by priority, holding `path` (known to Graft, or publishing a
        `.sha1` for it); None if none has it. Raises UpstreamUnavailable when none has it and
        at least one could not answer."""
        failure: UpstreamUnavailable | None = None
        snapshot = "-SNAPSHOT/" in path
        for upstream in await self.ctx.upstreams.for_ecosystem(ECOSYSTEM):
            url = upstream.url + path
            held = await self.index.get(url)
            if held is not None and not await self.ctx.blobs.exists(held.digest):
                held = None
            if held is not None and not (snapshot and _expired(held, upstream)):
                return Located(upstream, url, held, None)
            try:
                page = await self.ctx.pages.get(upstream, url + ".sha1", accept=ACCEPT_TEXT)
            except UpstreamUnavailable as exc:
                failure = failure or exc
                continue
            if not page.found:
                continue
            sha1 = checksums.parse(page.body, "sha1")
            if sha1 is None:
                raise UpstreamMismatch(
                    f"upstream {upstream.name}'s {path.rsplit('/', 1)[-1]}.sha1 holds no SHA-1 "
                    "digest: the file cannot be verified, so it is not served"
                )
            if held is not None and held.hashes.get("sha1") == sha1:
                return Located(upstream, url, held, None)  # a SNAPSHOT file that has not moved
            return Located(upstream, url, None, sha1)
        if failure is not None:
            raise failure
        return None

    async def serve_upstream(self, request: Request, located: Located, media_type: str) -> Response:
        # a SNAPSHOT file may be replaced upstream; a release file never changes
        cache = REVALIDATE if "-SNAPSHOT/" in located.url else CACHE_CONTROL
        if located.held is not None:
            return await serve_blob(
                request,
                self.ctx.blobs,
                located.held.digest,
                media_type=media_type,
                cache_control=cache,
            )
        assert located.sha1 is not None
        return await self.ctx.fetcher.serve(
            request,
            located.upstream,
            located.url,
            None,
            media_type=media_type,
            checks={"sha1": located.sha1},
            hashes=layout.CHECKSUMS,
            on_stored=self._recorder(located.url),
            cache_control=cache,
        )

    async def upstream_hashes(self, located: Located) -> dict[str, str]:
        """Checksums of an upstream file, pulling it through first if Graft lacks it."""
        if located.held is not None:
            return located.held.hashes
        assert located.sha1 is not None
        await self.ctx.fetcher.fetch(
            located.upstream,
            located.url,
            checks={"sha1": located.sha1},
            hashes=layout.CHECKSUMS,
            on_stored=self._recorder(located.url),
        )
        held = await self.index.get(located.url)
        if held is None:  # the download succeeded but could not be recorded
            raise UpstreamUnavailable(f"{located.url} was fetched but could not be recorded")
        return held.hashes

    def _recorder(self, url: str) -> OnStored:
        async def record(fetched: Fetched) -> None:
            await self.index.put(url, fetched)

        return record

    async def upstream_small_file(self, path: str) -> Page | None:
        """A signature (`.asc`) from the first upstream that has it, as a cached page."""
        failure: UpstreamUnavailable | None = None
        for upstream in await self.ctx.upstreams.for_ecosystem(ECOSYSTEM):
            try:
                page = await self.ctx.pages.get(upstream, upstream.url + path, accept=ACCEPT_TEXT)
            except UpstreamUnavailable as exc:
                failure = failure or exc
                continue
            if page.found:
                return page
        if failure is not None:
            raise failure
        return None


def _same_version(text: str, wanted: versions.MavenVersion) -> bool:
    try:
        return versions.parse(text) == wanted
    except versions.InvalidVersion:
        return False


def _expired(held: IndexedFile, upstream: UpstreamConfig) -> bool:
    age = (dt.datetime.now(dt.UTC) - held.fetched_at).total_seconds()
    return age > upstream.ttl_seconds


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
