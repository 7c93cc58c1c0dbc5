"""HTTP surface under /maven: a Maven 2 repository (GET, HEAD, and PUT to deploy).

GET  /maven/<group>/<artifact>/<version>/<file>       an artifact (the organization's or upstream)
GET  /maven/<...>/<file>.{md5,sha1,sha256,sha512}      its checksum
GET  /maven/<...>/<file>.asc                           its signature, passed through
GET  /maven/<group>/<artifact>/maven-metadata.xml      upstream versions + the organization's
PUT  any of these                                      deploy (publish scope), as mvn does

Maven sends credentials only after a challenge, so every 401 carries
`WWW-Authenticate: Basic realm="graft"` (graft.responses does that for every route).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.maven import checksums, layout, versions
from graft.ecosystems.maven.publish import DeployOptions, deploy_checksum, deploy_file, receive
from graft.ecosystems.maven.service import ECOSYSTEM, MavenService, Rendered
from graft.errors import InvalidInput, NotFound
from graft.files import bytes_response, not_modified, serve_blob
from graft.limits import BodyLimitMiddleware
from graft.routing import Route
from graft.usage import Served, UsageEvent

PREFIX = "/maven"
_SERVED = {"patched": Served.PATCHED, "private": Served.PRIVATE}
_MEDIA = {
    "jar": "application/java-archive",
    "war": "application/java-archive",
    "ear": "application/java-archive",
    "pom": "application/xml",
    "xml": "application/xml",
    "module": "application/json",  # Gradle module metadata
    "asc": "application/pgp-signature",
}
CHECKSUM_MEDIA = "text/plain; charset=us-ascii"
METADATA_MEDIA = "application/xml"
_TRUE = ("1", "true", "yes", "on")


def media_type(repo_path: layout.RepoPath) -> str:
    if repo_path.checksum:
        return CHECKSUM_MEDIA
    if repo_path.signature:
        return _MEDIA["asc"]
    artifact = repo_path.artifact
    ext = artifact.extension.rsplit(".", 1)[-1] if artifact else "xml"
    return _MEDIA.get(ext, "application/octet-stream")


def parse(request: Request) -> layout.RepoPath:
    layout.check_raw_path(request.scope.get("raw_path") or b"")
    return layout.parse_path(request.path_params["path"])


def metadata_response(request: Request, rendered: Rendered, checksum: str | None) -> Response:
    if checksum:
        return bytes_response(
            request, checksums.body(rendered.hashes[checksum]), CHECKSUM_MEDIA, immutable=False
        )
    headers = {"ETag": rendered.etag, "Cache-Control": "private, max-age=0, must-revalidate"}
    if rendered.stale:
        headers["Warning"] = '110 graft "upstream unreachable; serving the last good copy"'
    if not_modified(request, rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type=METADATA_MEDIA, headers=headers)


def _header_list(request: Request, name: str) -> tuple[str, ...]:
    return tuple(v for raw in request.headers.getlist(name) for v in raw.replace(",", " ").split())


def _header_flag(request: Request, name: str) -> bool:
    return request.headers.get(name, "").strip().lower() in _TRUE


def routes(ctx: AppContext) -> Sequence[BaseRoute]:
    service = MavenService(ctx)

    def record(principal: Principal, artifact: layout.Artifact, served: Served) -> None:
        ctx.usage.record(
            UsageEvent(
                org_id=principal.org_id,
                account_id=principal.account_id,
                ecosystem=ECOSYSTEM,
                package=artifact.package,
                version=artifact.version,
                served=served,
            )
        )

    async def local_checksum(f: CatalogFile, algorithm: str, request: Request) -> Response:
        value = f.digest.removeprefix("sha256:") if algorithm == "sha256" else f.attrs[algorithm]
        return bytes_response(request, checksums.body(value), CHECKSUM_MEDIA, immutable=True)

    async def get(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        try:
            repo_path = parse(request)
        except layout.NotInLayout as exc:
            raise NotFound(exc.message) from None
        if repo_path.metadata_dir is not None:
            rendered = await service.metadata(principal.org_id, repo_path.metadata_dir)
            return metadata_response(request, rendered, repo_path.checksum)
        artifact = repo_path.artifact
        assert artifact is not None
        content = repo_path.content
        media = media_type(repo_path)
        # a download of the artifact itself (not a HEAD, POM, checksum or signature) is usage
        counts = request.method == "GET" and not artifact.is_pom
        local = await service.local(principal.org_id, artifact.package)
        held_path = repo_path.target  # the artifact itself, or its .asc
        for f in local:
            if f.filename == held_path:
                if repo_path.checksum:
                    return await local_checksum(f, repo_path.checksum, request)
                response = await serve_blob(request, ctx.blobs, f.digest, media_type=media)
                if counts and not repo_path.signature:
                    record(principal, artifact, _SERVED[f.kind])
                return response
        if any(f.kind == "private" for f in local):
            raise NotFound(f"{held_path} was not found (a private artifact of this organization)")

        if repo_path.signature:
            page = await service.upstream_small_file(held_path)
            if page is None:
                raise NotFound(f"{held_path} was not found in Graft or its upstream repositories")
            if repo_path.checksum:
                value = checksums.digests(page.body)[repo_path.checksum]
                return bytes_response(request, checksums.body(value), media, immutable=False)
            return bytes_response(request, page.body, media, immutable=False)

        located = await service.locate(content)
        if located is None:
            raise NotFound(f"{content} was not found in Graft or its upstream repositories")
        if repo_path.checksum:
            hashes = await service.upstream_hashes(located)
            body = checksums.body(hashes[repo_path.checksum])
            # a SNAPSHOT file may be replaced upstream; a release file never changes
            return bytes_response(
                request, body, media, immutable=not versions.is_snapshot(artifact.version)
            )
        response = await service.serve_upstream(request, located, media)
        if counts:
            record(principal, artifact, Served.UPSTREAM)
        return response

    async def put(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        repo_path = parse(request)
        if repo_path.metadata_dir is not None:
            async for _ in request.stream():  # Graft renders metadata itself
                pass
            return PlainTextResponse(
                "accepted; Graft generates maven-metadata.xml itself\n", status_code=201
            )
        if repo_path.checksum:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > 4096:
                    raise InvalidInput("a checksum file is a few bytes; this is not one")
            await deploy_checksum(ctx, service, principal, repo_path, body)
            return PlainTextResponse("checksum matches\n", status_code=201)
        options = DeployOptions(
            fixes=_header_list(request, "x-graft-fixes"),
            private=_header_flag(request, "x-graft-private"),
            allow_missing_upstream=_header_flag(request, "x-graft-allow-missing-upstream"),
        )
        async with receive(request, ctx.settings.data_dir, ctx.settings.max_upload_bytes) as got:
            stored = await deploy_file(ctx, service, principal, repo_path, got, options)
        fixes = f", fixes {', '.join(stored.fixes)}" if stored.fixes else ""
        return PlainTextResponse(
            f"deployed {stored.filename} ({stored.kind} build of {stored.package} "
            f"{stored.version}{fixes})\n",
            status_code=201,
        )

    async def dispatch(request: Request) -> Response:
        if request.method == "PUT":
            return await put(request)
        return await get(request)

    async def root(request: Request) -> Response:
        await ctx.authenticate(request, Scope.READ)
        return PlainTextResponse(
            "Graft Maven repository: point a <mirror> or <repository> at this URL "
            "(graft configure maven prints the settings.xml)\n"
        )

    limit = [Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_upload_bytes)]
    return [
        Route(f"{PREFIX}/", root, methods=["GET", "HEAD"]),
        Route(
            f"{PREFIX}/{{path:path}}", dispatch, methods=["GET", "HEAD", "PUT"], middleware=limit
        ),
    ]
