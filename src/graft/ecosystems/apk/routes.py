"""HTTP surface of the Alpine repositories (the line users write in /etc/apk/repositories is
`http://root:<token>@<graft>/alpine/<release>`).

    GET  /alpine/<release>/<arch>/APKINDEX.tar.gz
    GET  /alpine/<release>/<arch>/<name>-<version>.apk
    POST /alpine/<release>/upload                 a patched .apk (publish scope)
    GET  /keys/<graft key name>.rsa.pub          Graft's public key, for /etc/apk/keys/
    GET  /keys/apk-key-name                      that file name
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from graft.accounts.scopes import Scope
from graft.context import AppContext
from graft.ecosystems.apk.publish import ApkOptions, publish_apk
from graft.ecosystems.apk.repo import AlpineRepository
from graft.errors import NotFound
from graft.files import bytes_response, serve_blob
from graft.limits import BodyLimitMiddleware
from graft.routing import Route
from graft.uploads import form_flag, spooled_upload
from graft.usage import Served, UsageEvent

APK = "application/octet-stream"


def routes(ctx: AppContext) -> Sequence[BaseRoute]:
    repo = AlpineRepository(ctx)

    async def index(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        release, arch = request.path_params["release"], request.path_params["arch"]
        rendered = await repo.render(principal.org_id, release, arch)
        return bytes_response(
            request, rendered.index, "application/gzip", immutable=False,
            last_modified=rendered.built,
        )  # fmt: skip

    async def package(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        release, arch = request.path_params["release"], request.path_params["arch"]
        rendered = await repo.render(principal.org_id, release, arch)
        pool_file = rendered.pool.get(request.path_params["filename"])
        if pool_file is None:
            raise NotFound(f"{request.path_params['filename']} is not in this repository")
        if pool_file.digest is not None:
            response = await serve_blob(request, ctx.blobs, pool_file.digest, media_type=APK)
        else:
            assert pool_file.blob is not None
            response = bytes_response(request, pool_file.blob, APK, immutable=True)
        ctx.usage.record(
            UsageEvent(
                org_id=principal.org_id,
                account_id=principal.account_id,
                ecosystem="alpine",
                package=pool_file.package,
                version=pool_file.version,
                served=Served.PATCHED if pool_file.kind == "patched" else Served.FALLBACK,
                distribution=release,
                source=pool_file.source,
            )
        )
        return response

    async def upload(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        data_dir = ctx.settings.data_dir
        async with spooled_upload(request, data_dir, "file", "an .apk") as (form, path, _name):
            options = ApkOptions(
                release=request.path_params["release"],
                fixes=tuple(str(v) for v in form.getlist("fixes")),
                allow_missing_upstream=form_flag(form.get("allow_missing_upstream")),
            )
            published = await publish_apk(ctx, repo, principal, path, options)
        fixes = f", fixes {', '.join(published.fixes)}" if published.fixes else ""
        return PlainTextResponse(
            f"published {published.package} {published.version} for Alpine v{options.release} "
            f"as {published.package} and {repo.prefix}{published.package}{fixes}\n"
        )

    async def public_key(request: Request) -> Response:
        if request.path_params["name"] != repo.key.key_name:
            raise NotFound(f"no key {request.path_params['name']}; Graft's is {repo.key.key_name}")
        return bytes_response(
            request, repo.key.public_pem(), "application/x-pem-file", immutable=True
        )

    async def key_name(request: Request) -> Response:
        """The file name apk expects the key under in /etc/apk/keys/ (for scripts)."""
        return PlainTextResponse(repo.key.key_name + "\n")

    limit = [Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_upload_bytes)]
    return [
        Route("/keys/apk-key-name", key_name, methods=["GET", "HEAD"]),
        Route("/keys/{name:str}", public_key, methods=["GET", "HEAD"]),
        Route("/alpine/{release}/upload", upload, methods=["POST"], middleware=limit),
        Route("/alpine/{release}/{arch}/APKINDEX.tar.gz", index, methods=["GET", "HEAD"]),
        Route("/alpine/{release}/{arch}/{filename}", package, methods=["GET", "HEAD"]),
    ]
