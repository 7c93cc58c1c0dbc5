"""The PyPI overlay: one project = the first upstream that has it, plus the organization's files.

Composed of small sources, each cached in memory so that a warm index page or download costs no
database query and no upstream request:
- the organization's catalog files (graft.catalog, per project),
- the upstream page (graft.upstream.pages, per URL) parsed once per page identity,
- the rendered page, per (organization, project, format, identities), with its ETag.

Several upstreams are asked in priority order and the first that has the project wins; their
files are never mixed, and a project the organization publishes privately is never looked up
upstream at all (no dependency confusion).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urljoin

from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.pypi import index
from graft.ecosystems.pypi.project import DistFile, Project
from graft.ecosystems.pypi.upstream import ACCEPT, parse_page, parse_project_list
from graft.errors import NotFound
from graft.upstream.config import UpstreamConfig
from graft.upstream.pages import Page, UpstreamUnavailable

ECOSYSTEM = "pypi"
# The upstream that has a project: its configuration, its page and the files on it.
Found = tuple[UpstreamConfig, Page, tuple[DistFile, ...]]


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    media_type: str
    etag: str
    # The response headers, encoded once (graft.responses.RawResponse).
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Rendered:
        etag = _etag(body)
        headers = (
            (b"etag", etag.encode()),
            (b"vary", b"Accept"),
            # Clients keep the page and revalidate it with If-None-Match on every use.
            (b"cache-control", b"private, max-age=0, must-revalidate"),
            (b"content-type", media_type.encode()),
        )
        return cls(body, media_type, etag, headers)


@dataclass(frozen=True, slots=True)
class Resolved:
    project: Project
    upstream: UpstreamConfig | None
    local: tuple[CatalogFile, ...]
    identity: str
    stale: bool


def local_dist(f: CatalogFile) -> DistFile:
    return DistFile(
        filename=f.filename,
        version=f.version,
        source=f.kind,
        sha256=f.digest.removeprefix("sha256:"),
        url="",
        requires_python=f.attrs.get("requires_python"),
        size=f.size,
        upload_time=f.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        metadata_sha256=(f.attrs.get("metadata_digest") or "").removeprefix("sha256:") or None,
    )


class PyPIService:
    def __init__(self, ctx: AppContext, *, max_rendered: int = 4096) -> None:
        self.ctx = ctx
        self._parsed: OrderedDict[str, tuple[str, tuple[DistFile, ...]]] = OrderedDict()
        self._rendered: OrderedDict[tuple[int, str, str], tuple[str, Rendered]] = OrderedDict()
        self.max_rendered = max_rendered
        self._urls: dict[tuple[str, str], str] = {}

    # -- sources --------------------------------------------------------------------------
    async def upstream_files(self, project: str) -> Found | None:
        """The first upstream (by priority) that has the project; None if none has it.
        Raises UpstreamUnavailable when no upstream has it and at least one could not answer."""
        failure: UpstreamUnavailable | None = None
        for upstream in await self.ctx.upstreams.for_ecosystem(ECOSYSTEM):
            url = self._project_url(upstream.url, project)
            try:
                page = await self.ctx.pages.get(upstream, url, accept=ACCEPT)
            except UpstreamUnavailable as exc:
                failure = failure or exc
                continue
            if page.found:
                return upstream, page, self._parse(page)
        if failure is not None:
            raise failure
        return None

    def _project_url(self, base: str, project: str) -> str:
        key = (base, project)
        url = self._urls.get(key)
        if url is None:  # urljoin is slow enough to matter on every page request
            if len(self._urls) > 100_000:
                self._urls.clear()
            url = self._urls[key] = urljoin(base, f"{project}/")
        return url

    def _parse(self, page: Page) -> tuple[DistFile, ...]:
        hit = self._parsed.get(page.url)
        if hit is not None and hit[0] == page.identity:
            return hit[1]
        files = tuple(parse_page(page))
        self._parsed[page.url] = (page.identity, files)
        if len(self._parsed) > 4096:
            self._parsed.popitem(last=False)
        return files

    async def _sources(
        self, org_id: int, project: str
    ) -> tuple[tuple[CatalogFile, ...], Found | None, bool]:
        """The organization's files, the upstream that has the project (if any), and whether
        the upstream part is a stale copy."""
        local = await self.ctx.catalog.files(org_id, ECOSYSTEM, project)
        private = any(f.kind == "private" for f in local)
        try:
            found = None if private else await self.upstream_files(project)
        except UpstreamUnavailable:
            if not local:
                raise
            return local, None, True  # the organization's own files are still served
        return local, found, found[1].stale if found is not None else False

    @staticmethod
    def _identity(
        local: tuple[CatalogFile, ...],
        found: Found | None,
    ) -> str:
        upstream = found[1].identity if found is not None else ""
        return upstream + "|" + ",".join(str(f.id) for f in local) if local else upstream + "|"

    async def resolve(self, org_id: int, project: str) -> Resolved:
        local, found, stale = await self._sources(org_id, project)
        return self._resolved(project, local, found, stale)

    @staticmethod
    def _resolved(
        project: str,
        local: tuple[CatalogFile, ...],
        found: Found | None,
        stale: bool,
    ) -> Resolved:
        files: list[DistFile] = []
        upstream = None
        if found is not None:
            upstream, _page, upstream_files = found
            files.extend(upstream_files)
        files.extend(local_dist(f) for f in local)
        if not files:
            raise NotFound(f"project {project!r} was not found in Graft or its upstream indexes")
        identity = PyPIService._identity(local, found)
        return Resolved(Project(project, tuple(files)), upstream, local, identity, stale)

    async def page(
        self, org_id: int, project: str, media: str, prefix: str
    ) -> tuple[Rendered, bool]:
        """The rendered project page and whether it is stale. A warm page is one dictionary
        lookup once its sources are known: nothing is assembled unless they changed."""
        local, found, stale = await self._sources(org_id, project)
        key = (org_id, project, media)
        ident = f"{prefix}|{self._identity(local, found)}"
        hit = self._rendered.get(key)
        if hit is not None and hit[0] == ident:
            self._rendered.move_to_end(key)
            return hit[1], stale
        return self.render(
            org_id, self._resolved(project, local, found, stale), media, prefix
        ), stale

    # -- pages ----------------------------------------------------------------------------
    def render(self, org_id: int, resolved: Resolved, media: str, prefix: str) -> Rendered:
        key = (org_id, resolved.project.name, media)
        ident = f"{prefix}|{resolved.identity}"
        hit = self._rendered.get(key)
        if hit is not None and hit[0] == ident:
            self._rendered.move_to_end(key)
            return hit[1]
        if media == index.JSON_V1:
            body = index.render_project_json(resolved.project, prefix)
        else:
            body = index.render_project_html(resolved.project, prefix)
        rendered = Rendered.of(body, _content_type(media))
        self._remember(key, ident, rendered)
        return rendered

    async def render_list(self, org_id: int, media: str, prefix: str) -> Rendered:
        names = set(await self.ctx.catalog.packages(org_id, ECOSYSTEM))
        identity = [",".join(sorted(names))]
        for upstream in await self.ctx.upstreams.for_ecosystem(ECOSYSTEM):
            try:
                page = await self.ctx.pages.get(upstream, upstream.url, accept=ACCEPT)
            except UpstreamUnavailable:
                continue
            if page.found:
                identity.append(page.identity)
                names.update(index_name for index_name in self._list(page))
        key = (org_id, "", media)
        ident = f"{prefix}|{'|'.join(identity)}"
        hit = self._rendered.get(key)
        if hit is not None and hit[0] == ident:
            return hit[1]
        ordered = sorted(names)
        if media == index.JSON_V1:
            body = index.render_list_json(ordered)
        else:
            body = index.render_list_html(ordered, prefix)
        rendered = Rendered.of(body, _content_type(media))
        self._remember(key, ident, rendered)
        return rendered

    @staticmethod
    def _list(page: Page) -> list[str]:
        from graft.ecosystems.pypi.dists import normalize

        return [normalize(n) for n in parse_project_list(page)]

    def _remember(self, key: tuple[int, str, str], ident: str, rendered: Rendered) -> None:
        self._rendered[key] = (ident, rendered)
        self._rendered.move_to_end(key)
        while len(self._rendered) > self.max_rendered:
            self._rendered.popitem(last=False)


def _content_type(media: str) -> str:
    return f"{media}; charset=utf-8" if media == index.TEXT_HTML else media


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
