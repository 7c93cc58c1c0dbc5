"""HTTP surface under /v2 (OCI distribution spec 1.1, Docker token flow).

GET       /v2/                                   API check (401 with the token challenge)
GET|POST  /v2/token                              registry tokens (Basic: any user + Graft token)
GET       /v2/_catalog                           repositories the token may read
GET|HEAD  /v2/<name>/manifests/<ref>             pull (tag or digest), pull-through
PUT       /v2/<name>/manifests/<ref>             push (publish scope)
DELETE    /v2/<name>/manifests/<ref>             delete a manifest (digest) or a tag
GET|HEAD  /v2/<name>/blobs/<digest>              blob, with Range
DELETE    /v2/<name>/blobs/<digest>              unlink a blob from the repository
POST      /v2/<name>/blobs/uploads/              start (or monolithic, or mount) an upload
GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<id>   status, chunk, finish, cancel
GET       /v2/<name>/tags/list?n=&last=          tags, paginated with Link
GET       /v2/<name>/referrers/<digest>          referrers, ?artifactType= filter
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.blobs import BlobTooLarge, DigestMismatch, digest_of, split_digest
from graft.context import AppContext
from graft.ecosystems.oci import errors
from graft.ecosystems.oci.auth import COOKIE, RegistryAuth
from graft.ecosystems.oci.gc import GcResult, collect
from graft.ecosystems.oci.manifests import MAX_MANIFEST_BYTES, parse
from graft.ecosystems.oci.names import (
    OCI_INDEX,
    base_media_type,
    valid_digest,
    valid_name,
    valid_tag,
)
from graft.ecosystems.oci.service import ECOSYSTEM, Found, RegistryService
from graft.ecosystems.oci.store import org_space
from graft.ecosystems.oci.tokens import TokenSigner, load_or_create_key
from graft.ecosystems.oci.uploads import LengthMismatch, OffsetConflict, Upload, UploadGone
from graft.errors import GraftError
from graft.files import not_modified, serve_blob
from graft.routing import Route
from graft.usage import Served, UsageEvent

API_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}
_PATHS = (
    ("manifest", re.compile(r"(?P<name>.+)/manifests/(?P<ref>[^/]+)")),
    ("upload", re.compile(r"(?P<name>.+)/blobs/uploads/(?P<id>[^/]*)")),
    ("blob", re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)")),
    ("tags", re.compile(r"(?P<name>.+)/tags/list")),
    ("referrers", re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)")),
)
_CONTENT_RANGE = re.compile(r"(?:bytes[= ])?(\d+)-(\d+)(?:/\d+|/\*)?")


def patched_tag(tag: str, label: str) -> bool:
    """The DESIGN.md convention: `3.12-slim-<label>` (optionally `-<label>.N`)."""
    base, sep, suffix = tag.rpartition(f"-{label}")
    return bool(sep and base) and (suffix == "" or re.fullmatch(r"\.\d+", suffix) is not None)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.size_invalid(f"manifest exceeds the limit of {limit} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.size_invalid(f"manifest exceeds the limit of {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _int_param(request: Request, key: str) -> int | None:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise errors.OCIError("PAGINATION_NUMBER_INVALID", f"{key} must be a number", 400)
    return int(raw)


def _page(request: Request, items: list[str], path: str) -> tuple[list[str], dict[str, str]]:
    """`n`/`last` pagination with a `Link` to the next page."""
    n = _int_param(request, "n")
    last = request.query_params.get("last")
    if last:
        items = [t for t in items if t > last]
    headers: dict[str, str] = {}
    if n is not None:
        page = items[:n]
        if len(items) > n and page:
            headers["Link"] = f'<{path}?n={n}&last={quote(page[-1])}>; rel="next"'
        items = page
    return items, headers


async def _drain(request: Request, limit: int = 64 << 20) -> None:
    """Read what is left of a refused request body (up to `limit`), so the client is not
    answered while it is still sending and the connection stays usable."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                break
    except (RuntimeError, ClientDisconnect):  # already read, or the client went away
        return


class Registry:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.service = RegistryService(ctx)
        self.meta = self.service.meta
        self.uploads = self.service.uploads
        self.auth = RegistryAuth(ctx, TokenSigner(load_or_create_key(ctx.settings.keys_dir)))
        self.label = ctx.settings.patch_label
        self.max_blob = ctx.settings.max_upload_bytes
        if ctx.settings.oci_gc_seconds > 0:
            ctx.add_periodic(ctx.settings.oci_gc_seconds, self.gc)

    async def gc(self) -> GcResult | None:
        grace = self.ctx.settings.oci_gc_grace_seconds
        # One collector at a time across replicas (they would only repeat each other's work:
        # the database already serialises a deletion against a push, see gc.py).
        async with self.ctx.cluster.lock("oci-gc", wait=0) as mine:
            if not mine:
                return None
            return await collect(
                self.meta,
                self.ctx.blobs,
                self.uploads,
                grace_seconds=grace,
                upload_idle_seconds=grace,
            )

    # --- entry points ---------------------------------------------------------------------

    async def base(self, request: Request) -> Response:
        try:
            await self.auth.require(request, None, "pull")
        except GraftError as exc:
            return errors.error_response(exc)
        return JSONResponse({}, headers=API_HEADERS)

    async def token(self, request: Request) -> Response:
        """The Docker token endpoint (GET with Basic), and the OAuth2 POST form containerd
        tries first (grant_type=password; refresh_token is answered the same way)."""
        try:
            scopes = request.query_params.getlist("scope")
            if request.method == "POST":
                form = await request.form()
                scopes += [str(v) for v in form.getlist("scope")]
                secret = form.get("password") or form.get("refresh_token")
                if secret:
                    request.scope["headers"] = [
                        (k, v) for k, v in request.scope["headers"] if k != b"authorization"
                    ] + [(b"authorization", f"Bearer {secret}".encode("latin-1"))]
            principal = await self.ctx.authenticate(
                request, challenge='Basic realm="graft", charset="UTF-8"'
            )
        except GraftError as exc:
            if exc.status_code == 401:
                exc = errors.unauthorized(exc.message, 'Basic realm="graft", charset="UTF-8"')
            return errors.error_response(exc)
        access = self.auth.grant_for(principal, scopes)
        token, lifetime = self.auth.signer.issue(principal, access)
        issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": lifetime,
            "issued_at": issued,
        }
        if request.method == "POST":
            body["scope"] = " ".join(scopes)
        response = JSONResponse(body, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE, token, max_age=lifetime, path="/v2/", httponly=True, samesite="strict"
        )
        return response

    async def dispatch(self, request: Request) -> Response:
        path: str = request.path_params["path"]
        head = request.method == "HEAD"
        try:
            if path in ("_catalog", "_catalog/"):
                return await self.catalog(request)
            for kind, pattern in _PATHS:
                m = pattern.fullmatch(path)
                if m is None:
                    continue
                name = m.group("name")
                if not valid_name(name):
                    raise errors.name_invalid(name)
                handler = getattr(self, f"{kind}_{request.method.lower()}", None)
                if handler is None:
                    raise errors.unsupported(f"{request.method} is not supported on {kind}s")
                response: Response = await handler(request, name, *m.groups()[1:])
                for key, value in API_HEADERS.items():
                    response.headers.setdefault(key, value)
                return response
            raise errors.OCIError("NAME_UNKNOWN", f"no such endpoint: /v2/{path}", 404)
        except GraftError as exc:
            await _drain(request)
            return errors.error_response(exc, head=head)
        except ClientDisconnect:
            return Response(status_code=400)

    # --- manifests ------------------------------------------------------------------------

    def _record(self, principal: Principal, name: str, reference: str, found: Found) -> None:
        digest = found.info.digest
        if found.upstream is not None:
            served = Served.UPSTREAM
        elif ":" not in reference and patched_tag(reference, self.label):
            served = Served.PATCHED
        else:
            served = Served.PRIVATE
        version = digest if ":" in reference else f"{reference}@{digest}"
        self.ctx.usage.record(
            UsageEvent(
                org_id=principal.org_id,
                account_id=principal.account_id,
                ecosystem=ECOSYSTEM,
                package=name,
                version=version[:255],
                served=served,
            )
        )

    async def manifest_get(self, request: Request, name: str, ref: str) -> Response:
        principal, _ = await self.auth.require(request, name, "pull")
        if (":" in ref and not valid_digest(ref)) or (":" not in ref and not valid_tag(ref)):
            raise errors.manifest_unknown(name, ref)
        found = await self.service.find(principal.org_id, name, ref)
        if found is None:
            raise errors.manifest_unknown(name, ref)
        info = found.info
        etag = f'"{info.digest}"'
        headers = {
            "Docker-Content-Digest": info.digest,
            "ETag": etag,
            "Content-Type": info.media_type,
            **API_HEADERS,
        }
        if found.stale:
            headers["Warning"] = '110 graft "upstream unreachable; serving the cached manifest"'
        if request.method == "GET" or ":" not in ref:
            self._record(principal, name, ref, found)
        if not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        if request.method == "HEAD":
            headers["Content-Length"] = str(info.size)
            return Response(status_code=200, headers=headers)
        body = await self.service.body(info.digest)
        return Response(body, headers=headers)

    manifest_head = manifest_get

    async def manifest_put(self, request: Request, name: str, ref: str) -> Response:
        principal, _ = await self.auth.require(request, name, "push")
        by_digest = ":" in ref
        if by_digest and not valid_digest(ref):
            raise errors.digest_invalid(f"invalid digest {ref!r}")
        if not by_digest and not valid_tag(ref):
            raise errors.tag_invalid(ref)
        body = await _read_limited(request, MAX_MANIFEST_BYTES)
        parsed = parse(body, base_media_type(request.headers.get("content-type")))
        digest = digest_of(body, split_digest(ref)[0] if by_digest else "sha256")
        if by_digest and digest != ref:
            raise errors.digest_invalid(f"the manifest's digest is {digest}, not {ref}")
        space = org_space(principal.org_id)
        repo = await self.meta.repository_id(space, name, create=True)
        assert repo is not None
        missing = await self.meta.missing_references(repo, parsed)
        if missing is not None:
            raise errors.manifest_blob_unknown(missing)
        await self.ctx.blobs.put(body, expected=digest)
        await self.meta.put_manifest(repo, digest, len(body), parsed, None if by_digest else ref)
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": digest,
        }
        if parsed.subject is not None:
            headers["OCI-Subject"] = parsed.subject
        return Response(status_code=201, headers=headers)

    async def manifest_delete(self, request: Request, name: str, ref: str) -> Response:
        principal, _ = await self.auth.require(request, name, "delete")
        repo = await self.meta.repository_id(org_space(principal.org_id), name)
        if ":" in ref:
            if not valid_digest(ref):
                raise errors.digest_invalid(f"invalid digest {ref!r}")
            deleted = repo is not None and await self.meta.delete_manifest(repo, ref)
        else:
            if not valid_tag(ref):
                raise errors.tag_invalid(ref)
            deleted = repo is not None and await self.meta.delete_tag(repo, ref)
        if not deleted:
            raise errors.manifest_unknown(name, ref)
        return Response(status_code=202)

    # --- blobs ----------------------------------------------------------------------------

    def _check_digest(self, digest: str) -> None:
        if not valid_digest(digest):
            raise errors.digest_invalid(
                f"invalid digest {digest!r}: use sha256:<64 hex> or sha512:<128 hex>"
            )

    async def blob_get(self, request: Request, name: str, digest: str) -> Response:
        principal, _ = await self.auth.require(request, name, "pull")
        self._check_digest(digest)
        head = request.method == "HEAD"
        repo = await self.meta.repository_id(org_space(principal.org_id), name)
        headers = {"Docker-Content-Digest": digest, **API_HEADERS}
        if (
            repo is not None
            and await self.service.has_blob(repo, digest, touch=head)
            and await self.ctx.blobs.exists(digest)
        ):
            response = await serve_blob(request, self.ctx.blobs, digest)
            response.headers.update(headers)
            return response
        up = await self.service.upstream_for(name)
        if up is None:
            raise errors.blob_unknown(digest)
        if await self.service.has_blob(up.repository_id, digest) and await self.ctx.blobs.exists(
            digest
        ):
            response = await serve_blob(request, self.ctx.blobs, digest)
            response.headers.update(headers)
            return response
        if head:
            r = await self.service.client.request(up.config, "HEAD", up.remote, f"blobs/{digest}")
            if r.status_code != 200:
                raise errors.blob_unknown(digest)
            length = r.headers.get("content-length", "0")
            return Response(status_code=200, headers={**headers, "Content-Length": length})
        # Link first, then fetch: garbage collection never deletes what a link protects.
        await self.meta.link(up.repository_id, digest)
        if self.service.client.with_token(up.config, up.remote) is up.config:
            # Make sure a token is at hand if the upstream uses the token flow.
            await self.service.client.request(up.config, "HEAD", up.remote, f"blobs/{digest}")
        config = self.service.client.with_token(up.config, up.remote)
        url = self.service.client.url(config, f"{up.remote}/blobs/{digest}")
        try:
            response = await self.ctx.fetcher.serve(request, config, url, digest)
        except GraftError as exc:
            if exc.status_code == 404:
                raise errors.blob_unknown(digest) from None
            raise
        response.headers.update(headers)
        return response

    blob_head = blob_get

    async def blob_delete(self, request: Request, name: str, digest: str) -> Response:
        principal, _ = await self.auth.require(request, name, "delete")
        self._check_digest(digest)
        repo = await self.meta.repository_id(org_space(principal.org_id), name)
        if repo is None or not await self.meta.unlink(repo, digest):
            raise errors.blob_unknown(digest)
        self.service.forget_blob(repo, digest)
        return Response(status_code=202)

    # --- uploads --------------------------------------------------------------------------

    def _upload_headers(self, name: str, upload: Upload, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload.id}",
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload.id,
            "Content-Length": "0",
        }

    def _created(self, name: str, digest: str) -> Response:
        return Response(
            status_code=201,
            headers={
                "Location": f"/v2/{name}/blobs/{digest}",
                "Docker-Content-Digest": digest,
                "Content-Length": "0",
            },
        )

    async def _mount(
        self, principal: Principal, repo: int, digest: str, source: str | None
    ) -> bool:
        candidates: list[int] = []
        if source is not None and valid_name(source):
            own = await self.meta.repository_id(org_space(principal.org_id), source)
            if own is not None:
                candidates.append(own)
            up = await self.service.upstream_for(source)
            if up is not None:
                candidates.append(up.repository_id)
        for candidate in candidates:
            if await self.meta.has_blob(candidate, digest) and await self.ctx.blobs.exists(digest):
                await self.meta.link(repo, digest, await self.ctx.blobs.size(digest))
                if await self.ctx.blobs.exists(digest):  # not collected meanwhile
                    return True
                await self.meta.unlink(repo, digest)
        return False

    async def upload_post(self, request: Request, name: str, upload_id: str) -> Response:
        query = request.query_params
        source = query.get("from")
        mounting = valid_digest(query.get("mount") or "") and valid_name(source or "")
        # The first challenge of a mount names the source's pull scope too, as CNCF
        # distribution's does: token-flow clients ask for the scopes of one challenge, once.
        also = f"repository:{source}:pull" if mounting and source != name else None
        principal, grant = await self.auth.require(request, name, "push", also=also)
        if upload_id:
            raise errors.unsupported("POST starts an upload at /v2/<name>/blobs/uploads/")
        space = org_space(principal.org_id)
        repo = await self.meta.repository_id(space, name, create=True)
        assert repo is not None
        mount = query.get("mount")
        if mount is not None and valid_digest(mount):
            if source is not None and grant is not None and not grant.allows(source, "pull"):
                if valid_name(source) and principal.allows(Scope.READ):
                    # A token for the target only (a client that asked before it knew of the
                    # mount): ask again for both, as CNCF distribution does.
                    both = f"repository:{name}:pull,push repository:{source}:pull"
                    raise errors.unauthorized(
                        f"mounting from {source} needs a registry token with pull on it",
                        self.auth.challenge(request, both, "insufficient_scope"),
                    )
                source = None  # a registry token must also grant pull on the source
            if await self._mount(principal, repo, mount, source):
                return self._created(name, mount)
        digest = query.get("digest")
        if digest is not None:
            self._check_digest(digest)
            return await self._monolithic(request, name, repo, digest)
        upload = await self.uploads.create(space, name)
        return Response(status_code=202, headers=self._upload_headers(name, upload, 0))

    async def _monolithic(self, request: Request, name: str, repo: int, digest: str) -> Response:
        await self.meta.link(repo, digest)
        try:
            async with self.ctx.blobs.writer(max_size=self.max_blob) as writer:
                async for chunk in request.stream():
                    await writer.write(chunk)
                await writer.commit(digest)
                size = writer.size
        except DigestMismatch as exc:
            await self._unlink_if_absent(repo, digest)
            raise errors.digest_invalid(
                f"the uploaded bytes have digest {exc.actual}, not {digest}"
            ) from None
        except BlobTooLarge:
            await self._unlink_if_absent(repo, digest)
            raise errors.size_invalid(
                f"blob exceeds the limit of {self.max_blob} bytes", 413
            ) from None
        except BaseException:
            await self._unlink_if_absent(repo, digest)
            raise
        await self.meta.set_link_size(repo, digest, size)
        return self._created(name, digest)

    async def _unlink_if_absent(self, repo: int, digest: str) -> None:
        if not await self.ctx.blobs.exists(digest):
            await self.meta.unlink(repo, digest)

    async def _session(self, principal: Principal, name: str, upload_id: str) -> Upload:
        upload = await self.uploads.get(upload_id, org_space(principal.org_id), name)
        if upload is None:
            raise errors.blob_upload_unknown(upload_id)
        return upload

    async def upload_get(self, request: Request, name: str, upload_id: str) -> Response:
        principal, _ = await self.auth.require(request, name, "push")
        upload = await self._session(principal, name, upload_id)
        headers = self._upload_headers(name, upload, upload.size)
        return Response(status_code=204, headers=headers)

    def _range_error(self, name: str, upload: Upload, size: int, message: str) -> errors.OCIError:
        headers = self._upload_headers(name, upload, size)
        del headers["Content-Length"]
        return errors.OCIError("BLOB_UPLOAD_INVALID", message, 416, headers=headers)

    async def _append(self, request: Request, upload: Upload, name: str) -> int:
        """Append the request body as the next chunk; returns the new size."""
        size = upload.size
        content_range = request.headers.get("content-range")
        expected_length: int | None = None
        if content_range:
            m = _CONTENT_RANGE.fullmatch(content_range.strip())
            if m is None:
                raise errors.blob_upload_invalid(f"invalid Content-Range {content_range!r}", 416)
            start, end = int(m.group(1)), int(m.group(2))
            if start != size or end < start:
                raise self._range_error(
                    name, upload, size, f"chunk starts at {start} but the upload holds {size} bytes"
                )
            expected_length = end - start + 1
        declared = request.headers.get("content-length")
        if (
            expected_length is not None
            and declared is not None
            and declared.isdigit()
            and int(declared) != expected_length
        ):
            raise errors.blob_upload_invalid(
                f"Content-Length {declared} does not match Content-Range {content_range}", 416
            )
        try:
            return await self.uploads.append(
                upload, request.stream(), expected_length=expected_length, limit=self.max_blob
            )
        except BlobTooLarge:
            raise errors.size_invalid(
                f"blob exceeds the limit of {self.max_blob} bytes", 413
            ) from None
        except LengthMismatch as exc:
            raise errors.blob_upload_invalid(str(exc), 416) from None
        except OffsetConflict as exc:
            # another chunk for the same offset won (on this replica or another one)
            raise self._range_error(
                name,
                upload,
                exc.size,
                f"another chunk took offset {size} first; the upload holds {exc.size} bytes",
            ) from None
        except UploadGone:
            raise errors.blob_upload_unknown(upload.id) from None

    async def upload_patch(self, request: Request, name: str, upload_id: str) -> Response:
        principal, _ = await self.auth.require(request, name, "push")
        upload = await self._session(principal, name, upload_id)
        size = await self._append(request, upload, name)
        return Response(status_code=202, headers=self._upload_headers(name, upload, size))

    async def upload_put(self, request: Request, name: str, upload_id: str) -> Response:
        principal, _ = await self.auth.require(request, name, "push")
        upload = await self._session(principal, name, upload_id)
        digest = request.query_params.get("digest")
        if not digest:
            raise errors.digest_invalid("finishing an upload needs ?digest=<digest>")
        self._check_digest(digest)
        repo = await self.meta.repository_id(upload.space, name, create=True)
        assert repo is not None
        size = await self._append(request, upload, name)
        upload = replace(upload, size=size)
        await self.meta.link(repo, digest)
        try:
            await self.uploads.finish(upload, digest, max_size=self.max_blob)
        except DigestMismatch as exc:
            await self._unlink_if_absent(repo, digest)
            await self.uploads.remove(upload)
            raise errors.digest_invalid(
                f"the uploaded bytes have digest {exc.actual}, not {digest}"
            ) from None
        except UploadGone:
            await self._unlink_if_absent(repo, digest)
            raise errors.blob_upload_unknown(upload.id) from None
        except BaseException:
            await self._unlink_if_absent(repo, digest)
            raise
        await self.uploads.remove(upload)
        await self.meta.set_link_size(repo, digest, await self.ctx.blobs.size(digest))
        return self._created(name, digest)

    async def upload_delete(self, request: Request, name: str, upload_id: str) -> Response:
        principal, _ = await self.auth.require(request, name, "push")
        upload = await self._session(principal, name, upload_id)
        await self.uploads.remove(upload)
        return Response(status_code=204)

    # --- discovery ------------------------------------------------------------------------

    async def tags_get(self, request: Request, name: str) -> Response:
        principal, _ = await self.auth.require(request, name, "pull")
        tags = await self.service.tags(principal.org_id, name)
        if tags is None:
            raise errors.name_unknown(name)
        page, headers = _page(request, tags, f"/v2/{name}/tags/list")
        return JSONResponse({"name": name, "tags": page}, headers={**headers, **API_HEADERS})

    async def referrers_get(self, request: Request, name: str, digest: str) -> Response:
        principal, _ = await self.auth.require(request, name, "pull")
        self._check_digest(digest)
        repo = await self.meta.repository_id(org_space(principal.org_id), name)
        infos = await self.meta.referrers(repo, digest) if repo is not None else []
        wanted = request.query_params.get("artifactType")
        headers = dict(API_HEADERS)
        if wanted:
            infos = [i for i in infos if i.artifact_type == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        manifests = []
        for info in infos:
            item: dict[str, Any] = {
                "mediaType": info.media_type,
                "digest": info.digest,
                "size": info.size,
            }
            if info.artifact_type:
                item["artifactType"] = info.artifact_type
            if info.annotations:
                item["annotations"] = info.annotations
            manifests.append(item)
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return Response(json.dumps(body).encode(), media_type=OCI_INDEX, headers=headers)

    async def catalog(self, request: Request) -> Response:
        principal, grant = await self.auth.require(request, "*", "*")
        names = await self.meta.repositories(org_space(principal.org_id))
        if grant is not None and not grant.allows("*", "*"):
            names = [n for n in names if grant.allows(n, "pull")]
        page, headers = _page(request, names, "/v2/_catalog")
        return JSONResponse({"repositories": page}, headers={**headers, **API_HEADERS})


def routes(ctx: AppContext) -> Sequence[BaseRoute]:
    registry = Registry(ctx)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/v2/", registry.base, methods=["GET", "HEAD"]),
        Route("/v2/token", registry.token, methods=["GET", "POST"]),
        Route("/v2/{path:path}", registry.dispatch, methods=methods),
    ]
