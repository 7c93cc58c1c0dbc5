"""HTTP surface of the APT repositories.

GET  /<distro>/<codename>/dists/<codename>/InRelease | Release | Release.gpg
GET  /<distro>/<codename>/dists/<codename>/main/binary-<arch>/Packages[.gz|.xz]
GET  /<distro>/<codename>/dists/<codename>/main/binary-<arch>/by-hash/SHA256/<hex>
GET  /<distro>/<codename>/pool/main/…/<name>_<version>_<arch>.deb
POST /<distro>/<codename>/upload            a patched .deb (publish scope)
GET  /keys/graft-archive-keyring.gpg | .asc  the archive key (public, no token needed)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from graft.accounts.scopes import Scope
from graft.context import AppContext
from graft.ecosystems.apt import debs
from graft.ecosystems.apt.publish import DebOptions, publish_deb
from graft.ecosystems.apt.repo import AptRepository
from graft.errors import NotFound
from graft.files import CACHE_CONTROL, bytes_response, not_modified, serve_blob
from graft.limits import BodyLimitMiddleware
from graft.responses import PartsResponse
from graft.routing import Route
from graft.uploads import form_flag, spooled_upload
from graft.usage import Served, UsageEvent

DISTROS = ("debian", "ubuntu")
KEYRING = "/keys/graft-archive-keyring"
DEB = "application/vnd.debian.binary-package"
CACHE_IMMUTABLE = CACHE_CONTROL.encode()
CACHE_REVALIDATE = b"private, max-age=0, must-revalidate"


def routes(ctx: AppContext) -> Sequence[BaseRoute]:
    repos = {distro: AptRepository(ctx, distro) for distro in DISTROS}

    async def dists(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        repo = repos[_distro(request)]
        codename = request.path_params["codename"]
        if request.path_params["suite"] != codename:
            raise NotFound(f"this repository serves only suite {codename!r}")
        rendered = await repo.render(principal.org_id, codename)
        path = request.path_params["path"]
        index_file = rendered.files.get(path)
        if index_file is None:
            raise NotFound(f"dists/{codename}/{path} does not exist")
        media = (
            b"text/plain; charset=utf-8"
            if path in ("InRelease", "Release")
            else b"application/octet-stream"
        )
        etag = f'"{index_file.sha256[:32]}"'
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", CACHE_IMMUTABLE if "/by-hash/" in path else CACHE_REVALIDATE),
        ]
        if not_modified(request, etag):
            return PartsResponse((), headers, 304)
        return PartsResponse(index_file.parts, [*headers, (b"content-type", media)])

    async def pool(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        distro = _distro(request)
        repo = repos[distro]
        codename = request.path_params["codename"]
        rendered = await repo.render(principal.org_id, codename)
        pool_file = rendered.pool_file("pool/" + request.path_params["path"])
        if pool_file is None:
            raise NotFound(f"{request.path_params['path']} is not in this repository")
        served = Served.PATCHED if pool_file.kind == "patched" else Served.FALLBACK
        if pool_file.digest is not None:
            response = await serve_blob(
                request,
                ctx.blobs,
                pool_file.digest,
                media_type="application/vnd.debian.binary-package",
            )
        else:
            blob = debs.transitional_deb(
                pool_file.package, pool_file.version, pool_file.architecture, repo.prefix
            )
            if hashlib.sha256(blob).hexdigest() != pool_file.sha256:  # deterministic by design
                raise NotFound(f"{pool_file.filename} changed; run apt-get update")
            response = bytes_response(request, blob, DEB, immutable=True)
        ctx.usage.record(
            UsageEvent(
                org_id=principal.org_id,
                account_id=principal.account_id,
                ecosystem=distro,
                package=pool_file.package,
                version=pool_file.version,
                served=served,
                distribution=codename,
                source=pool_file.source,
                source_version=pool_file.source_version,
            )
        )
        return response

    async def upload(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        repo = repos[_distro(request)]
        data_dir = ctx.settings.data_dir
        async with spooled_upload(request, data_dir, "file", "a .deb") as (form, path, _name):
            options = DebOptions(
                codename=request.path_params["codename"],
                fixes=tuple(str(v) for v in form.getlist("fixes")),
                allow_missing_upstream=form_flag(form.get("allow_missing_upstream")),
            )
            published = await publish_deb(ctx, repo, principal, path, options)
        fixes = f", fixes {', '.join(published.fixes)}" if published.fixes else ""
        return PlainTextResponse(
            f"published {published.package} {published.version} for {repo.distro} "
            f"{options.codename} as {published.package} and {repo.prefix}{published.package}"
            f"{fixes}\n"
        )

    async def keyring(request: Request) -> Response:
        keyring = repos["debian"].keyring  # one archive keyring for every distro
        if request.scope["path"].endswith(".gpg"):
            return bytes_response(
                request, keyring.public_binary(), "application/pgp-keys", immutable=False
            )
        return bytes_response(
            request, keyring.public_armored().encode(), "application/pgp-keys", immutable=False
        )

    limit = [Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_upload_bytes)]
    out: list[BaseRoute] = [
        Route(KEYRING + ".gpg", keyring, methods=["GET", "HEAD"]),
        Route(KEYRING + ".asc", keyring, methods=["GET", "HEAD"]),
    ]
    for distro in DISTROS:
        out += [
            Route(
                f"/{distro}/{{codename}}/dists/{{suite}}/{{path:path}}",
                dists,
                methods=["GET", "HEAD"],
            ),
            Route(f"/{distro}/{{codename}}/pool/{{path:path}}", pool, methods=["GET", "HEAD"]),
            Route(f"/{distro}/{{codename}}/upload", upload, methods=["POST"], middleware=limit),
        ]
    return out


def _distro(request: Request) -> str:
    """The first path segment: the routes are /debian/… and /ubuntu/…."""
    return str(request.scope["path"]).split("/", 2)[1]
