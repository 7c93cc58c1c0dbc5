"""HTTP surface under /pypi: the simple index, file downloads, core metadata, uploads.

GET  /pypi/simple/                       project list (PEP 503 / 691)
GET  /pypi/simple/<project>/             project page (PEP 503 / 691 / 658 / 700 / 714)
GET  /pypi/files/<project>/<file>        a distribution (upstream or the organization's)
GET  /pypi/files/<project>/<file>.metadata   its core metadata (PEP 658)
POST /pypi/legacy/                       upload, as twine does (publish scope)
GET  /pypi/pypi/<project>[/<version>]/json   the PyPI JSON API shape, with `vulnerabilities`
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.context import AppContext
from graft.ecosystems.pypi import index
from graft.ecosystems.pypi.dists import normalize, parse_filename
from graft.ecosystems.pypi.publish import PublishOptions, publish_file
from graft.ecosystems.pypi.service import ECOSYSTEM, PyPIService, Rendered
from graft.errors import GraftError, InvalidInput, NotFound
from graft.files import not_modified, serve_blob
from graft.limits import BodyLimitMiddleware
from graft.responses import RawResponse
from graft.routing import Route
from graft.uploads import form_flag, spooled_upload
from graft.usage import Served, UsageEvent

PREFIX = "/pypi"
WHEEL = "application/octet-stream"
_SERVED = {"upstream": Served.UPSTREAM, "patched": Served.PATCHED, "private": Served.PRIVATE}


class NotAcceptable(GraftError):
    status_code = 406
    code = "not_acceptable"


def prefix_of(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{PREFIX}"


_STALE = (b"warning", b'110 graft "upstream unreachable; serving the last good copy"')


def page_response(request: Request, rendered: Rendered, *, stale: bool = False) -> Response:
    headers = (*rendered.headers, _STALE) if stale else rendered.headers
    if not_modified(request, rendered.etag):
        return RawResponse(b"", [h for h in headers if h[0] != b"content-type"], 304)
    return RawResponse(rendered.body, headers)


def _media(request: Request) -> str:
    media = index.negotiate(request.headers.get("accept"))
    if media is None:
        raise NotAcceptable(
            "none of the media types in Accept is served here: use "
            f"{index.JSON_V1}, {index.HTML_V1} or {index.TEXT_HTML}"
        )
    return media


def routes(ctx: AppContext) -> Sequence[BaseRoute]:
    service = PyPIService(ctx)

    def record(principal: Principal, project: str, version: str, source: str) -> None:
        ctx.usage.record(
            UsageEvent(
                org_id=principal.org_id,
                account_id=principal.account_id,
                ecosystem=ECOSYSTEM,
                package=project,
                version=version,
                served=_SERVED[source],
            )
        )

    async def project_list(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        rendered = await service.render_list(principal.org_id, _media(request), prefix_of(request))
        return page_response(request, rendered)

    async def project_page(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        name = request.path_params["project"]
        canonical = normalize(name)
        if name != canonical or not request.scope["path"].endswith("/"):
            target = f"{prefix_of(request)}/simple/{canonical}/"
            if request.url.query:
                target += f"?{request.url.query}"
            return RedirectResponse(target, status_code=301)
        rendered, stale = await service.page(
            principal.org_id, canonical, _media(request), prefix_of(request)
        )
        return page_response(request, rendered, stale=stale)

    async def download(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        project, filename = request.path_params["project"], request.path_params["filename"]
        metadata = filename.endswith(".metadata")
        dist_name = filename.removesuffix(".metadata") if metadata else filename
        try:
            dist = parse_filename(dist_name)
        except InvalidInput:
            raise NotFound(f"{filename} is not a distribution file") from None
        if dist.project != project:
            raise NotFound(f"{filename} does not belong to project {project!r}")

        for f in await ctx.catalog.files(principal.org_id, ECOSYSTEM, project):
            if f.filename == dist_name:
                if metadata:
                    digest = f.attrs.get("metadata_digest")
                    if not digest:
                        raise NotFound(f"{filename}: no core metadata for this file")
                    return await serve_blob(
                        request, ctx.blobs, digest, media_type="text/plain; charset=utf-8"
                    )
                response = await serve_blob(request, ctx.blobs, f.digest, media_type=WHEEL)
                record(principal, project, f.version, f.kind)
                return response

        if await ctx.catalog.is_private(principal.org_id, ECOSYSTEM, project):
            raise NotFound(f"{filename} was not found")
        found = await service.upstream_files(project)
        dist_file = next((f for f in found[2] if f.filename == dist_name), None) if found else None
        if found is None or dist_file is None:
            raise NotFound(f"{filename} was not found in Graft or its upstream indexes")
        upstream = found[0]
        if metadata:
            if dist_file.metadata_sha256 is None:
                raise NotFound(f"{filename}: the upstream index offers no core metadata")
            expected = f"sha256:{dist_file.metadata_sha256}" if dist_file.metadata_sha256 else None
            return await ctx.fetcher.serve(
                request,
                upstream,
                dist_file.url + ".metadata",
                expected,
                media_type="text/plain; charset=utf-8",
            )
        expected = f"sha256:{dist_file.sha256}" if dist_file.sha256 else None
        response = await ctx.fetcher.serve(
            request, upstream, dist_file.url, expected, media_type=WHEEL
        )
        record(principal, project, dist_file.version, "upstream")
        return response

    async def upload(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        data_dir = ctx.settings.data_dir
        async with spooled_upload(request, data_dir, "content", "a distribution") as (
            form,
            path,
            client_name,
        ):
            action = form.get(":action")
            if action not in (None, "file_upload"):
                raise InvalidInput(f"unsupported :action {action!r}: only file_upload is")
            filename = os.path.basename(client_name)
            if filename != client_name:
                raise InvalidInput(f"invalid distribution file name {client_name!r}")
            options = PublishOptions(
                fixes=tuple(str(v) for v in form.getlist("graft_fixes")),
                allow_missing_upstream=form_flag(form.get("graft_allow_missing_upstream")),
                private=form_flag(form.get("graft_private")),
                sha256=_str_or_none(form.get("sha256_digest")),
            )
            published = await publish_file(ctx, service, principal, path, filename, options)
        fixes = f", fixes {', '.join(published.fixes)}" if published.fixes else ""
        return PlainTextResponse(
            f"published {published.filename} ({published.kind} build of {published.package} "
            f"{published.version}{fixes})\n"
        )

    async def json_api(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        from graft.ecosystems.pypi import jsonapi

        project = normalize(request.path_params["project"])
        resolved = await service.resolve(principal.org_id, project)
        version = request.path_params.get("version") or jsonapi.latest(resolved.project)
        base = f"{request.url.scheme}://{request.url.netloc}{prefix_of(request)}"
        found = await ctx.vulns.advisories_for(principal.org_id, ECOSYSTEM, project, [version])
        body = jsonapi.render(resolved.project, version, base, found.get(version, []))
        return JSONResponse(body)

    upload_limit = [Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_upload_bytes)]
    return [
        Route(f"{PREFIX}/simple/", project_list, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/simple/{{project}}/", project_page, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/simple/{{project}}", project_page, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/files/{{project}}/{{filename}}", download, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/legacy/", upload, methods=["POST"], middleware=upload_limit),
        Route(f"{PREFIX}/legacy", upload, methods=["POST"], middleware=upload_limit),
        Route(f"{PREFIX}/pypi/{{project}}/json", json_api, methods=["GET"]),
        Route(f"{PREFIX}/pypi/{{project}}/{{version}}/json", json_api, methods=["GET"]),
    ]


def _str_or_none(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
