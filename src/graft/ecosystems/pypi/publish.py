"""Publishing wheels and sdists: patched builds (`<upstream>+<label>.<N>`) and private packages.

Checks, in order, before anything is stored: the file name is a distribution's (no path tricks),
the archive opens and its metadata agrees with the file name, the sha256 sent by the client (if
any) matches, the version's local label is the configured one, the upstream version it patches
exists (unless allowed), and the file is not already published.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from graft.accounts.models import Principal
from graft.blobs import DigestMismatch
from graft.catalog import CatalogFile
from graft.catalog.service import Kind
from graft.context import AppContext
from graft.ecosystems.pypi import versions
from graft.ecosystems.pypi.dists import check_agrees, parse_filename, read_metadata
from graft.ecosystems.pypi.service import ECOSYSTEM, PyPIService
from graft.errors import Conflict, InvalidInput


@dataclass(frozen=True, slots=True)
class PublishOptions:
    fixes: tuple[str, ...] = ()
    allow_missing_upstream: bool = False
    private: bool = False  # claim a name that also exists upstream, for this organization
    sha256: str | None = None  # what the client says the file hashes to


async def publish_file(
    ctx: AppContext,
    service: PyPIService,
    principal: Principal,
    path: Path,
    filename: str,
    options: PublishOptions,
) -> CatalogFile:
    dist = parse_filename(filename)
    meta = read_metadata(path, dist)
    check_agrees(dist, meta, filename)
    project = dist.project
    version = dist.version

    existing = await ctx.catalog.files(principal.org_id, ECOSYSTEM, project)
    if any(f.filename == filename for f in existing):
        raise Conflict(f"{filename} already exists; published files cannot be replaced")
    private_project = any(f.kind == "private" for f in existing)

    label = ctx.settings.patch_label
    try:
        marker = versions.patch_marker(version, label)
    except ValueError as exc:
        raise InvalidInput(f"{filename}: {exc}") from None

    upstream_version: str | None = None
    kind: Kind
    if private_project or (marker is None and options.private):
        kind = "private"
    elif marker is not None:
        kind = "patched"
        upstream_version = marker.upstream
        if not options.allow_missing_upstream:
            await _require_upstream_version(service, project, marker.upstream, filename)
    else:
        kind = "private"
        if await _exists_upstream(service, project):
            raise Conflict(
                f"{project!r} exists upstream: publish a patched build as "
                f"{version}+{label}.<N>, or claim the name for this organization with "
                "`graft publish pypi --private` (it is then never taken from upstream)"
            )

    digest, size = await _store(ctx, path, options.sha256)
    attrs: dict[str, object] = {"kind": dist.kind}
    if meta.requires_python:
        attrs["requires_python"] = meta.requires_python
    if dist.kind == "wheel":
        attrs["metadata_digest"] = await ctx.blobs.put(meta.raw)
    return await ctx.catalog.add(
        org_id=principal.org_id,
        ecosystem=ECOSYSTEM,
        package=project,
        version=str(version),
        upstream_version=upstream_version,
        kind=kind,
        filename=filename,
        digest=digest,
        size=size,
        fixes=list(options.fixes),
        attrs=attrs,
        created_by=principal.account_id,
    )


async def _exists_upstream(service: PyPIService, project: str) -> bool:
    return await service.upstream_files(project) is not None


async def _require_upstream_version(
    service: PyPIService, project: str, upstream_version: str, filename: str
) -> None:
    found = await service.upstream_files(project)
    known = {f.version for f in found[2]} if found else set()
    wanted = versions.parse(upstream_version)
    if not any(versions.parse(v) == wanted for v in known):
        raise InvalidInput(
            f"{filename} patches {project} {upstream_version}, which no upstream index has; "
            "publish with --allow-missing-upstream if that is intended"
        )


async def _store(ctx: AppContext, path: Path, claimed_sha256: str | None) -> tuple[str, int]:
    expected = f"sha256:{claimed_sha256.lower()}" if claimed_sha256 else None
    try:
        with path.open("rb") as fh:

            async def chunks() -> AsyncIterator[bytes]:
                while block := fh.read(1 << 20):
                    yield block

            digest = await ctx.blobs.put(chunks(), expected)
    except DigestMismatch as exc:
        raise InvalidInput(
            f"the uploaded file's sha256 is {exc.actual.removeprefix('sha256:')}, not the "
            f"{claimed_sha256} the client sent: the upload was damaged; nothing was stored"
        ) from None
    return digest, await ctx.blobs.size(digest)
