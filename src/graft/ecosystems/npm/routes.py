"""HTTP surface under /npm: the npm registry API as npm, pnpm and Yarn use it.

GET  /npm/<name>                         packument (full JSON, or abbreviated on
                                         Accept: application/vnd.npm.install-v1+json)
GET  /npm/<name>/<version|tag>           one version document
GET  /npm/<name>/-/<file>.tgz            a tarball (upstream, verified; or the organization's)
PUT  /npm/<name>                         npm publish (publish scope)
GET  /npm/-/package/<name>/dist-tags     dist-tag ls;  PUT|DELETE …/dist-tags/<tag>: add, rm
GET  /npm/-/whoami, /npm/-/ping, /npm/-/v1/search
POST /npm/-/npm/v1/security/advisories/bulk, …/audits/quick, …/audits   npm audit
POST /npm/-/graft/publish                graft publish npm (multipart, with --fixes)

<name> is `pkg` or `@scope/pkg`: the server decodes `@scope%2fpkg` once into the latter.
Errors are JSON `{"error": "…"}`, the field npm prints after the status line; a 401 carries no
WWW-Authenticate challenge, because npm would then print the challenge instead of the message.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.context import AppContext
from graft.ecosystems.npm import packument, versions
from graft.ecosystems.npm.names import PackageName, catalog_filename, parse_name
from graft.ecosystems.npm.publish import (
    PublishOptions,
    check_tag,
    publish_tarball,
    read_publish_document,
    spooled_bytes,
)
from graft.ecosystems.npm.service import ECOSYSTEM, NpmService, Rendered
from graft.errors import GraftError, InvalidInput, NotFound
from graft.files import not_modified, serve_blob
from graft.limits import BodyLimitMiddleware
from graft.routing import Route
from graft.uploads import form_flag, spooled_upload
from graft.upstream.files import UpstreamMismatch
from graft.usage import Served, UsageEvent

PREFIX = "/npm"
TARBALL = "application/octet-stream"
MAX_JSON_BODY = 16 << 20  # audit and dist-tag bodies
_SERVED = {"upstream": Served.UPSTREAM, "patched": Served.PATCHED, "private": Served.PRIVATE}

Handler = Callable[[Request], Awaitable[Response]]


def npm_errors(handler: Handler) -> Handler:
    """GraftError → `{"error": message}` with its status, as npm clients expect."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except GraftError as exc:
            headers = {}
            retry = getattr(exc, "retry_after", None)
            if retry is not None:
                headers["Retry-After"] = str(retry)
            return JSONResponse(
                {"error": exc.message}, status_code=exc.status_code, headers=headers
            )

    return wrapped


def public_prefix(ctx: AppContext, request: Request) -> str:
    """Absolute URL of /npm as clients reach it: settings.public_url, else the request's.
    (Inside the /npm mount, root_path already ends with /npm.)"""
    if ctx.settings.public_url:
        return ctx.settings.public_url + PREFIX
    scope = request.scope
    host = "localhost"
    for key, value in scope["headers"]:
        if key == b"host":
            host = value.decode("latin-1")
            break
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"


def _name(request: Request) -> PackageName:
    params = request.path_params
    raw = f"@{params['scope']}/{params['name']}" if "scope" in params else params["name"]
    try:
        return parse_name(raw)
    except InvalidInput as exc:
        raise NotFound(exc.message) from None


_ACCEPTS: dict[str, bool] = {}


def wants_abbreviated(accept: str | None) -> bool:
    """npm, pnpm and Yarn send `application/vnd.npm.install-v1+json; q=1.0,
    application/json; q=0.8, */*`: the abbreviated form when it is preferred."""
    if not accept or packument.ABBREVIATED not in accept:
        return False
    known = _ACCEPTS.get(accept)
    if known is None:
        if len(_ACCEPTS) > 1000:  # clients send a handful of distinct headers
            _ACCEPTS.clear()
        known = _ACCEPTS[accept] = _prefers_abbreviated(accept)
    return known


def _prefers_abbreviated(accept: str) -> bool:
    best_abbrev, best_json = 0.0, 0.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media == packument.ABBREVIATED:
            best_abbrev = max(best_abbrev, q)
        elif media == packument.FULL:
            best_json = max(best_json, q)
    return best_abbrev > 0 and best_abbrev >= best_json


def rendered_response(request: Request, rendered: Rendered, *, stale: bool) -> Response:
    headers = {
        "ETag": rendered.etag,
        "Vary": "Accept, Authorization",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    if stale:
        headers["Warning"] = '110 graft "upstream unreachable; serving the last good copy"'
    if not_modified(request, rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


async def _json_body(request: Request, limit: int = MAX_JSON_BODY) -> Any:
    body = await request.body()
    encoding = request.headers.get("content-encoding", "").lower()
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
    except (OSError, EOFError, zlib.error):
        raise InvalidInput(f"the request body is not valid {encoding} data") from None
    if len(body) > limit:
        raise InvalidInput("the request body is too large")
    try:
        return json.loads(body)
    except ValueError:
        raise InvalidInput("the request body is not valid JSON") from None


def _json(data: Any, status_code: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status_code, media_type="application/json")


def routes(ctx: AppContext) -> Sequence[BaseRoute]:
    service = NpmService(ctx)

    def record(
        request: Request, principal: Principal, name: PackageName, version: str, source: str
    ) -> None:
        if request.scope["method"] == "HEAD":  # a look, not an install
            return
        ctx.usage.record(
            UsageEvent(
                org_id=principal.org_id,
                account_id=principal.account_id,
                ecosystem=ECOSYSTEM,
                package=name.name,
                version=version,
                served=_SERVED[source],
            )
        )

    # -- reading ------------------------------------------------------------------------
    async def get_packument(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        name = _name(request)
        media = (
            packument.ABBREVIATED
            if wants_abbreviated(request.headers.get("accept"))
            else packument.FULL
        )
        resolved = await service.resolve(principal.org_id, name)
        rendered = service.render(principal.org_id, resolved, media, public_prefix(ctx, request))
        return rendered_response(request, rendered, stale=resolved.stale)

    async def get_version(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        name = _name(request)
        wanted = request.path_params["version"]
        view = (await service.resolve(principal.org_id, name)).view()
        version = view.dist_tags.get(wanted, wanted)
        if version not in view.versions:
            parsed = versions.parse(version, True)
            match = next(
                (v for v in view.versions if parsed and versions.parse(v, True) == parsed), None
            )
            if match is None:
                raise NotFound(f"{name.name}@{wanted} was not found")
            version = match
        body = packument.render_version(view, version, public_prefix(ctx, request))
        return Response(body, media_type="application/json")

    async def get_tarball(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        name = _name(request)
        filename = request.path_params["filename"]
        version = name.version_of(filename)
        if version is None:
            raise NotFound(f"{filename} is not a tarball of {name.name}")
        local = await ctx.catalog.files(principal.org_id, ECOSYSTEM, name.name)
        wanted = catalog_filename(name, version)
        for f in local:
            if f.filename == wanted:
                response = await serve_blob(request, ctx.blobs, f.digest, media_type=TARBALL)
                record(request, principal, name, f.version, f.kind)
                return response
        if any(f.kind == "private" for f in local):
            raise NotFound(f"{name.name}@{version} was not found")
        found = await service.upstream(name)
        entry = found[2].versions.get(version) if found else None
        if found is None or entry is None or entry.upstream_url is None:
            raise NotFound(f"{name.name}@{version} was not found in Graft or its upstreams")
        if not entry.checks:
            raise UpstreamMismatch(
                f"the upstream packument of {name.name} gives no integrity or shasum for "
                f"{version}: Graft does not serve files it cannot verify"
            )
        sha256 = entry.checks.get("sha256")
        response = await ctx.fetcher.serve(
            request,
            found[0],
            entry.upstream_url,
            f"sha256:{sha256}" if sha256 else None,
            media_type=TARBALL,
            checks=entry.checks,
        )
        record(request, principal, name, version, "upstream")
        return response

    # -- publishing ---------------------------------------------------------------------
    async def put_packument(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        name = _name(request)
        body = await request.body()
        try:
            doc = json.loads(body)
        except ValueError:
            raise InvalidInput("the publish document is not valid JSON") from None
        del body
        sent = read_publish_document(doc, name)
        del doc
        options = PublishOptions(tags=sent.tags, claimed=sent.claimed, expected_name=name.name)
        with spooled_bytes(sent.tarball, ctx.settings.data_dir) as path:
            published = await publish_tarball(
                ctx, service, principal, path, sent.attachment, options
            )
        return _json(
            {
                "ok": True,
                "id": name.name,
                "version": published.file.version,
                "kind": published.file.kind,
                "dist-tags": list(published.tags),
            },
            status_code=201,
        )

    async def graft_publish(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        async with spooled_upload(request, ctx.settings.data_dir, "file", "a .tgz") as (
            form,
            path,
            client_name,
        ):
            options = PublishOptions(
                fixes=tuple(str(v) for v in form.getlist("fixes")),
                allow_missing_upstream=form_flag(form.get("allow_missing_upstream")),
                private=form_flag(form.get("private")),
                tags=tuple(str(t) for t in form.getlist("tag") if str(t)),
            )
            published = await publish_tarball(ctx, service, principal, path, client_name, options)
        f = published.file
        fixes = f", fixes {', '.join(f.fixes)}" if f.fixes else ""
        tags = f", dist-tags: {', '.join(published.tags)}" if published.tags else ""
        return PlainTextResponse(
            f"published {f.package}@{f.version} ({f.kind} build{fixes}{tags})\n"
        )

    # -- dist-tags ----------------------------------------------------------------------
    def _tag_name(request: Request) -> PackageName:
        try:
            return parse_name(request.path_params["name"])
        except InvalidInput as exc:
            raise NotFound(exc.message) from None

    async def list_tags(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        view = (await service.resolve(principal.org_id, _tag_name(request))).view()
        return _json(dict(view.dist_tags))

    async def put_tag(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        name = _tag_name(request)
        tag = check_tag(request.path_params["tag"])
        version = await _json_body(request)
        if not isinstance(version, str):
            raise InvalidInput('the body must be a JSON string naming a version, e.g. "1.2.3"')
        view = (await service.resolve(principal.org_id, name)).view()
        if version not in view.versions:
            raise NotFound(f"{name.name}@{version} does not exist: a tag must name a version")
        await ctx.catalog.set_tag(principal.org_id, ECOSYSTEM, name.name, tag, version)
        return _json({"ok": True, tag: version})

    async def delete_tag(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.PUBLISH)
        name = _tag_name(request)
        tag = request.path_params["tag"]
        if not await ctx.catalog.remove_tag(principal.org_id, ECOSYSTEM, name.name, tag):
            raise NotFound(
                f"{name.name} has no dist-tag {tag!r} set in Graft (tags that come from the "
                "upstream cannot be removed here)"
            )
        return _json({"ok": True})

    # -- account, health, search, audit --------------------------------------------------
    async def whoami(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        return _json({"username": principal.account})

    async def ping(request: Request) -> Response:
        await ctx.authenticate(request, Scope.READ)
        return _json({})

    async def search(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        from graft.ecosystems.npm.search import search as run_search

        return _json(await run_search(ctx, principal, request.query_params))

    async def advisories_bulk(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise InvalidInput("expected a JSON object of package name → versions")
        from graft.ecosystems.npm import audit

        return _json(await audit.bulk(ctx, principal.org_id, body))

    async def audits_quick(request: Request) -> Response:
        principal = await ctx.authenticate(request, Scope.READ)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise InvalidInput("expected an npm audit report request (a JSON object)")
        from graft.ecosystems.npm import audit

        return _json(await audit.quick(ctx, principal.org_id, body))

    async def not_supported(request: Request) -> Response:
        await ctx.authenticate(request, Scope.PUBLISH)
        raise GraftError(
            "Graft does not unpublish or rewrite published versions: publish a new patched "
            "build instead"
        )

    async def login(request: Request) -> Response:
        # 501, not 4xx: npm answers a 4xx here by falling back to prompting for a password.
        return JSONResponse(
            {
                "error": "Graft does not log in with a user name and password: put a token in "
                ".npmrc (`graft configure npm` prints the lines; `graft token create` makes a "
                "token)"
            },
            status_code=501,
        )

    async def unknown(request: Request) -> Response:
        raise NotFound(f"{request.url.path} is not part of the npm registry API")

    def r(path: str, handler: Handler, methods: list[str], **kw: Any) -> Route:
        return Route(path, npm_errors(handler), methods=methods, **kw)

    publish_limit = ctx.settings.max_upload_bytes * 4 // 3 + (1 << 20)  # base64 + JSON
    put_limit = [Middleware(BodyLimitMiddleware, max_bytes=publish_limit)]
    upload_limit = [Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_upload_bytes)]
    json_limit = [Middleware(BodyLimitMiddleware, max_bytes=MAX_JSON_BODY)]
    get = ["GET", "HEAD"]
    any_method = ["GET", "HEAD", "PUT", "POST", "DELETE"]
    # One mount, so the application's router tries one pattern for all of /npm; inside it the
    # installers' hot paths (packuments, tarballs) come first. `-` is never a package name, so
    # the /-/ endpoints cannot be shadowed by the patterns before them.
    inner = [
        r("/{name}", get_packument, get),
        r("/@{scope}/{name}", get_packument, get),
        r("/{name}/-/{filename}", get_tarball, get),
        r("/@{scope}/{name}/-/{filename}", get_tarball, get),
        r("/{name}", put_packument, ["PUT"], middleware=put_limit),
        r("/@{scope}/{name}", put_packument, ["PUT"], middleware=put_limit),
        r("/{name}", not_supported, ["DELETE"]),
        r("/@{scope}/{name}", not_supported, ["DELETE"]),
        r("/-/whoami", whoami, get),
        r("/-/ping", ping, get),
        r("/-/v1/search", search, get),
        r("/-/npm/v1/security/advisories/bulk", advisories_bulk, ["POST"], middleware=json_limit),
        r("/-/npm/v1/security/audits/quick", audits_quick, ["POST"], middleware=json_limit),
        r("/-/npm/v1/security/audits", audits_quick, ["POST"], middleware=json_limit),
        r("/-/package/{name:path}/dist-tags", list_tags, get),
        r(
            "/-/package/{name:path}/dist-tags/{tag}",
            put_tag,
            ["PUT", "POST"],
            middleware=json_limit,
        ),
        r("/-/package/{name:path}/dist-tags/{tag}", delete_tag, ["DELETE"]),
        r("/-/graft/publish", graft_publish, ["POST"], middleware=upload_limit),
        r("/-/v1/login", login, ["POST"]),
        r("/-/user/{rest:path}", login, ["PUT", "POST", "GET"]),
        r("/@{scope}/{name}/-rev/{rev}", not_supported, ["PUT", "DELETE"]),
        r("/{name}/-rev/{rev}", not_supported, ["PUT", "DELETE"]),
        r("/@{scope}/{name}/{version}", get_version, get),
        r("/{name}/{version}", get_version, get),
        r("/", unknown, any_method),
        r("/{rest:path}", unknown, any_method),
    ]
    return [Mount(PREFIX, routes=inner), Route(PREFIX, npm_errors(unknown), methods=any_method)]
