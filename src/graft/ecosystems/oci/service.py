"""The registry as a client sees it: the organization's repositories over a verified
pull-through cache of the configured upstream registries.

For a name, the organization's own repository answers first (its pushed, patched images; a
pushed tag replaces the upstream tag of the same name). What it lacks comes from the first
upstream, by priority, whose `namespaces` cover the name: manifests are fetched, verified and
stored in that upstream's space, which every organization shares; a tag is fresh for the
upstream's `ttl_seconds`, then revalidated with a HEAD (one request in flight per tag), and if
the upstream is down the cached manifest keeps being served.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from graft.blobs import BlobStore
from graft.context import AppContext
from graft.ecosystems.oci import errors
from graft.ecosystems.oci.manifests import parse
from graft.ecosystems.oci.store import ManifestInfo, MetaStore, org_space, upstream_space
from graft.ecosystems.oci.uploads import UploadStore
from graft.ecosystems.oci.upstream import FetchedManifest, RegistryClient, map_name
from graft.errors import GraftError, NotFound
from graft.singleflight import SingleFlight
from graft.upstream.config import UpstreamConfig
from graft.upstream.pages import UpstreamUnavailable

log = logging.getLogger("graft.oci")
ECOSYSTEM = "oci"
_BODY_CACHE_ENTRIES = 4096
_TAGS_TTL = 60.0


@dataclass(frozen=True, slots=True)
class Found:
    info: ManifestInfo
    repository_id: int
    upstream: UpstreamConfig | None  # None: the organization's own repository
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Upstream:
    config: UpstreamConfig
    remote: str
    repository_id: int


class RegistryService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.blobs: BlobStore = ctx.blobs
        self.meta = MetaStore(ctx.db)
        ctx.cluster.subscribe("oci", self.meta.cache.on_announced)
        self.uploads = UploadStore(ctx.db, ctx.blobs)
        self.client = RegistryClient(ctx.http)
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._flight: SingleFlight[ManifestInfo | None] = SingleFlight()
        self._tags: dict[tuple[str, str], tuple[float, list[str]]] = {}
        self._links: dict[tuple[int, str], float] = {}

    # --- manifests ------------------------------------------------------------------------

    async def body(self, digest: str) -> bytes:
        hit = self._bodies.get(digest)
        if hit is not None:
            self._bodies.move_to_end(digest)
            return hit
        data = await self.blobs.read_bytes(digest)
        self._bodies[digest] = data
        while len(self._bodies) > _BODY_CACHE_ENTRIES:
            self._bodies.popitem(last=False)
        return data

    async def upstream_for(self, name: str) -> Upstream | None:
        upstreams = await self.ctx.upstreams.for_ecosystem(ECOSYSTEM)
        mapped = map_name(upstreams, name) if upstreams else None
        if mapped is None:
            return None
        config, remote = mapped
        repo = await self.meta.repository_id(upstream_space(config.name), remote, create=True)
        assert repo is not None
        return Upstream(config, remote, repo)

    async def find(self, org_id: int, name: str, reference: str) -> Found | None:
        repo = await self.meta.repository_id(org_space(org_id), name)
        if repo is not None:
            info = await self.meta.resolve(repo, reference)
            if info is not None:
                return Found(info, repo, None)
        up = await self.upstream_for(name)
        if up is None:
            return None
        return await self._from_upstream(up, reference)

    async def _from_upstream(self, up: Upstream, reference: str) -> Found | None:
        is_tag = ":" not in reference
        cached = await self.meta.resolve(up.repository_id, reference)
        if cached is not None and not is_tag:
            return Found(cached, up.repository_id, up.config)  # digests never change
        if cached is not None:
            checked = await self.meta.tag_checked(up.repository_id, reference)
            age = (
                (dt.datetime.now(dt.UTC) - checked[1]).total_seconds()
                if checked is not None
                else float("inf")
            )
            if age < up.config.ttl_seconds:
                return Found(cached, up.repository_id, up.config)
        key = (up.repository_id, reference)
        try:
            info = await self._flight.do(key, lambda: self._refresh(up, reference, cached))
        except (UpstreamUnavailable, GraftError) as exc:
            if isinstance(exc, NotFound):
                return None
            if cached is not None:
                log.warning(
                    "upstream %s failed for %s:%s (%s); serving the cached manifest",
                    up.config.name,
                    up.remote,
                    reference,
                    exc.message,
                )
                return Found(cached, up.repository_id, up.config, stale=True)
            raise
        return Found(info, up.repository_id, up.config) if info is not None else None

    async def _refresh(
        self, up: Upstream, reference: str, cached: ManifestInfo | None
    ) -> ManifestInfo | None:
        if cached is not None:  # a tag past its TTL: a HEAD says whether it moved
            announced = await self.client.manifest(up.config, up.remote, reference, head=True)
            if announced == cached.digest:
                await self.meta.touch_tag(up.repository_id, reference)
                return cached
        fetched = await self.client.manifest(up.config, up.remote, reference)
        assert isinstance(fetched, FetchedManifest)
        await self.store_upstream(up, reference, fetched)
        return await self.meta.resolve(up.repository_id, reference)

    async def store_upstream(self, up: Upstream, reference: str, fetched: FetchedManifest) -> None:
        try:
            parsed = parse(fetched.body, fetched.media_type)
        except errors.OCIError as exc:
            raise UpstreamUnavailable(
                f"upstream {up.config.name} served an unusable manifest for "
                f"{up.remote}:{reference}: {exc.message}"
            ) from None
        await self.blobs.put(fetched.body, expected=fetched.digest)
        tag = None if ":" in reference else reference
        await self.meta.put_manifest(
            up.repository_id, fetched.digest, len(fetched.body), parsed, tag
        )

    # --- tags -----------------------------------------------------------------------------

    async def tags(self, org_id: int, name: str) -> list[str] | None:
        """Sorted tags of a name (the organization's and the upstream's), None if unknown."""
        found = False
        tags: set[str] = set()
        repo = await self.meta.repository_id(org_space(org_id), name)
        if repo is not None:
            own = await self.meta.tags(repo)
            found = bool(own) or await self._has_content(repo)
            tags.update(own)
        up = await self.upstream_for(name)
        if up is not None:
            remote = await self._upstream_tags(up)
            if remote is not None:
                found = True
                tags.update(remote)
        return sorted(tags) if found else None

    async def _has_content(self, repo: int) -> bool:
        return await self.meta.has_manifests(repo)  # untagged manifests make a repository too

    async def _upstream_tags(self, up: Upstream) -> list[str] | None:
        key = (up.config.name, up.remote)
        hit = self._tags.get(key)
        if hit is not None and time.monotonic() - hit[0] < min(_TAGS_TTL, up.config.ttl_seconds):
            return hit[1]
        try:
            tags = await self.client.tags(up.config, up.remote)
        except NotFound:
            self._tags[key] = (time.monotonic(), [])
            return None
        except (UpstreamUnavailable, GraftError) as exc:
            if hit is not None:
                return hit[1]
            cached = await self.meta.tags(up.repository_id)
            log.warning("upstream %s tags for %s failed: %s", up.config.name, up.remote, exc)
            return cached or None
        self._tags[key] = (time.monotonic(), tags)
        return tags

    # --- blobs ----------------------------------------------------------------------------

    async def has_blob(self, repo: int, digest: str, *, touch: bool = False) -> bool:
        key = (repo, digest)
        if not touch:
            seen = self._links.get(key)
            if seen is not None and time.monotonic() - seen < 2.0:
                return True
        held = await self.meta.has_blob(repo, digest, touch=touch)
        if held:
            self._links[key] = time.monotonic()
            if len(self._links) > 50_000:
                self._links.clear()
        return held

    def forget_blob(self, repo: int, digest: str) -> None:
        self._links.pop((repo, digest), None)
