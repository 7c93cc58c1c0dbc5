"""The npm overlay: one package = the first upstream that has it, plus the organization's
patched builds and private versions, plus its dist-tags.

Composed of small sources, each cached in memory, so that a warm packument or tarball request
costs no database query and no upstream request:
- the organization's catalog files and tags (graft.catalog, per package),
- the upstream packument (graft.upstream.pages, per URL), parsed once per page identity into
  what downloads need (tarball URLs and digests); the full documents are parsed again only
  when a rendering is made,
- the rendered packument per (organization, package, form, URL prefix), keyed by the
  identities of the above, with its ETag.

A package the organization publishes privately is never looked up upstream (no dependency
confusion).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.npm import packument
from graft.ecosystems.npm.names import PackageName
from graft.ecosystems.npm.packument import UpstreamPackument, View
from graft.errors import NotFound
from graft.upstream.config import UpstreamConfig
from graft.upstream.pages import Page, UpstreamUnavailable

ECOSYSTEM = "npm"
# Upstreams are asked for the full document: the abbreviated one lacks what `npm view`,
# Yarn Berry and the full form served here need, and both forms are rendered from it.
UPSTREAM_ACCEPT = "application/json"


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    media_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class Resolved:
    name: PackageName
    upstream: tuple[UpstreamConfig, Page] | None
    local: tuple[CatalogFile, ...]
    tags: dict[str, str]
    identity: str
    stale: bool

    def view(self) -> View:
        """The merged packument, with full documents (parses the upstream page again)."""
        full = packument.parse_upstream(self.upstream[1], self.name) if self.upstream else None
        return packument.merge(self.name, full, self.local, self.tags)


class NpmService:
    """`max_parsed_bytes` and `max_rendered_bytes` bound the two caches by the size of the JSON
    they hold (a popular package's packument can be tens of MB; parsed, several times that)."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        max_rendered: int = 4096,
        max_rendered_bytes: int = 256 << 20,
        max_parsed_bytes: int = 128 << 20,
    ) -> None:
        self.ctx = ctx
        self.max_rendered = max_rendered
        self.max_rendered_bytes = max_rendered_bytes
        self.max_parsed_bytes = max_parsed_bytes
        self._parsed: OrderedDict[str, tuple[str, UpstreamPackument, int]] = OrderedDict()
        self._parsed_bytes = 0
        self._rendered: OrderedDict[tuple[int, str, str, str], tuple[str, Rendered]] = OrderedDict()
        self._rendered_bytes = 0
        self._urls: dict[tuple[str, str], str] = {}

    # -- sources --------------------------------------------------------------------------
    def _url(self, base: str, name: PackageName) -> str:
        key = (base, name.name)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) > 100_000:
                self._urls.clear()
            url = self._urls[key] = base + name.escaped
        return url

    async def upstream(
        self, name: PackageName
    ) -> tuple[UpstreamConfig, Page, UpstreamPackument] | None:
        """The first upstream (by priority) that has the package; None if none has it.
        Raises UpstreamUnavailable when none has it and at least one could not answer."""
        failure: UpstreamUnavailable | None = None
        for upstream in await self.ctx.upstreams.for_ecosystem(ECOSYSTEM):
            url = self._url(upstream.url, name)
            try:
                page = await self.ctx.pages.get(upstream, url, accept=UPSTREAM_ACCEPT)
                if page.found:
                    return upstream, page, self._parse(page, name)
            except UpstreamUnavailable as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return None

    def _parse(self, page: Page, name: PackageName) -> UpstreamPackument:
        hit = self._parsed.get(page.url)
        if hit is not None and hit[0] == page.identity:
            self._parsed.move_to_end(page.url)
            return hit[1]
        parsed = packument.parse_upstream(page, name, documents=False)
        if hit is not None:
            self._parsed_bytes -= hit[2]
        self._parsed[page.url] = (page.identity, parsed, len(page.body))
        self._parsed.move_to_end(page.url)
        self._parsed_bytes += len(page.body)
        while self._parsed_bytes > self.max_parsed_bytes and len(self._parsed) > 1:
            self._parsed_bytes -= self._parsed.popitem(last=False)[1][2]
        return parsed

    async def resolve(self, org_id: int, name: PackageName) -> Resolved:
        local = await self.ctx.catalog.files(org_id, ECOSYSTEM, name.name)
        tags = await self.ctx.catalog.tags(org_id, ECOSYSTEM, name.name)
        private = any(f.kind == "private" for f in local)
        stale = False
        found = None
        try:
            found = None if private else await self.upstream(name)
        except UpstreamUnavailable:
            if not local:
                raise
            stale = True  # the organization's own versions are still served
        if found is None and not local:
            raise NotFound(f"package {name.name!r} was not found in Graft or its upstreams")
        identity = found[1].identity if found else ""
        if found is not None:
            stale = found[1].stale
        if local:
            identity += "|" + ",".join(str(f.id) for f in local)
        if tags:
            identity += "|" + ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        upstream = (found[0], found[1]) if found else None
        return Resolved(name, upstream, local, tags, identity, stale)

    # -- rendering ------------------------------------------------------------------------
    def render(self, org_id: int, resolved: Resolved, media: str, prefix: str) -> Rendered:
        key = (org_id, resolved.name.name, media, prefix)
        hit = self._rendered.get(key)
        if hit is not None and hit[0] == resolved.identity:
            self._rendered.move_to_end(key)
            return hit[1]
        abbreviated = media == packument.ABBREVIATED
        body = packument.render(resolved.view(), prefix, abbreviated=abbreviated)
        rendered = Rendered(body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        if hit is not None:
            self._rendered_bytes -= len(hit[1].body)
        self._rendered[key] = (resolved.identity, rendered)
        self._rendered.move_to_end(key)
        self._rendered_bytes += len(body)
        while len(self._rendered) > 1 and (
            len(self._rendered) > self.max_rendered
            or self._rendered_bytes > self.max_rendered_bytes
        ):
            self._rendered_bytes -= len(self._rendered.popitem(last=False)[1][1].body)
        return rendered
