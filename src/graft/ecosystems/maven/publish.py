"""Deploying to Graft: what `mvn deploy`, `deploy:deploy-file`, Gradle's `maven-publish` and
`graft publish maven` PUT, file by file.

A release file is stored once: a second PUT of the same path is a 409 (release versions are
immutable, as Maven expects of a release repository). A SNAPSHOT version's files may be
deployed again (each `mvn deploy` adds a timestamped build; Graft renders the version's
maven-metadata.xml from what is stored). Checks before anything is stored: the path is in the
Maven layout (no path tricks), the version is a Maven version, a patched build's version is
`<upstream>-<label>.<N>` (`-SNAPSHOT` after it for a snapshot) and its upstream version exists
(unless allowed), a version without the marker of an artifact that exists upstream is refused
(unless claimed as private), a POM parses and names the coordinates of its path, a jar is a
zip archive, a signature is an armored PGP signature.

Advisories fixed come from the `X-Graft-Fixes` request header (repeat it or separate ids by
commas), the `graft.fixes` property of the version's POM, or `graft publish maven --fixes`;
every file of the version carries the union.

Checksum PUTs are compared with what Graft computed from the upload: a mismatch means the
upload was damaged, so the file is withdrawn (while its deploy is still recent) and the client
gets a 422. `maven-metadata.xml` PUTs are accepted and dropped: Graft renders metadata itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from starlette.requests import Request

from graft.accounts.models import Principal
from graft.blobs import DigestMismatch
from graft.catalog import CatalogFile
from graft.catalog.service import Kind, validate_fixes
from graft.context import AppContext
from graft.ecosystems.maven import checksums, layout, pom, versions
from graft.ecosystems.maven.service import ECOSYSTEM, MavenService
from graft.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge

ZIP_EXTENSIONS = {"jar", "war", "ear", "aar", "rar", "hpi", "jpi", "zip", "kar"}
RETRACT_WINDOW = dt.timedelta(minutes=10)  # a wrong checksum withdraws only a fresh upload
_BATCH = 1 << 20


@dataclass(frozen=True, slots=True)
class DeployOptions:
    fixes: tuple[str, ...] = ()
    private: bool = False  # claim a groupId:artifactId that also exists upstream
    allow_missing_upstream: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    path: Path
    size: int
    hashes: dict[str, str]  # md5, sha1, sha256, sha512 hex


@contextlib.asynccontextmanager
async def receive(request: Request, directory: Path, max_bytes: int) -> AsyncIterator[Received]:
    """Stream a PUT body to a temporary file, hashing it on the way; always removed after."""
    fd, name = tempfile.mkstemp(prefix="maven-put-", dir=directory)
    tmp = Path(name)
    hashers = {a: hashlib.new(a) for a in layout.CHECKSUMS}

    def write(batch: list[bytes]) -> None:
        for chunk in batch:
            for h in hashers.values():
                h.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]

    try:
        size = 0
        batch: list[bytes] = []
        pending = 0
        async for chunk in request.stream():
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"request body too large: the limit is {max_bytes} bytes")
            batch.append(chunk)
            pending += len(chunk)
            if pending >= _BATCH:
                await anyio.to_thread.run_sync(write, batch)
                batch, pending = [], 0
        if batch:
            await anyio.to_thread.run_sync(write, batch)
        os.close(fd)
        fd = -1
        yield Received(tmp, size, {a: h.hexdigest() for a, h in hashers.items()})
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _check_content(artifact: layout.Artifact, signature: bool, path: Path) -> pom.Pom | None:
    """Refuse content that cannot be what its name says; return the POM when it is one."""
    if signature:
        with path.open("rb") as fh:
            head = fh.read(64).lstrip()
        if not head.startswith(b"-----BEGIN PGP SIGNATURE-----"):
            raise InvalidInput(f"{artifact.filename}.asc is not an ASCII-armored PGP signature")
        return None
    if artifact.is_pom:
        parsed = pom.parse(path.read_bytes())
        if (parsed.group_id, parsed.artifact_id, parsed.version) != (
            artifact.group_id,
            artifact.artifact_id,
            artifact.version,
        ):
            raise InvalidInput(
                f"the POM is {parsed.group_id}:{parsed.artifact_id}:{parsed.version}, but it was "
                f"deployed as {artifact.group_id}:{artifact.artifact_id}:{artifact.version}"
            )
        return parsed
    if artifact.extension in ZIP_EXTENSIONS and not zipfile.is_zipfile(path):
        raise InvalidInput(f"{artifact.filename} is not a zip archive (a .{artifact.extension} is)")
    return None


async def deploy_file(
    ctx: AppContext,
    service: MavenService,
    principal: Principal,
    repo_path: layout.RepoPath,
    received: Received,
    options: DeployOptions,
) -> CatalogFile:
    artifact = repo_path.artifact
    if artifact is None or repo_path.checksum:
        raise InvalidInput(f"{repo_path.path} is not an artifact")
    version = artifact.version
    snapshot = versions.is_snapshot(version)
    try:
        versions.parse(version)
        marker = versions.patch_marker(version.removesuffix("-SNAPSHOT"), ctx.settings.patch_label)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    filename = repo_path.content + (f".{layout.SIGNATURE}" if repo_path.signature else "")

    existing = await service.local(principal.org_id, artifact.package)
    replaced = next((f for f in existing if f.filename == filename), None)
    if replaced is not None and not snapshot:  # a SNAPSHOT file may be deployed again
        raise Conflict(
            f"{filename} is already deployed and release files cannot be re-deployed: "
            + (
                f"publish a new build as {marker.upstream}-{ctx.settings.patch_label}."
                f"{max(_builds(existing, marker.upstream, ctx.settings.patch_label)) + 1}"
                if marker
                else "deploy a new version"
            )
        )
    parsed = await anyio.to_thread.run_sync(
        _check_content, artifact, repo_path.signature, received.path
    )
    fixes = validate_fixes([*options.fixes, *(parsed.fixes if parsed else [])])

    private_package = any(f.kind == "private" for f in existing)
    kind: Kind
    upstream_version: str | None = None
    if private_package or (marker is None and options.private):
        kind = "private"
    elif marker is not None:
        kind = "patched"
        upstream_version = marker.upstream
        if not options.allow_missing_upstream and not await service.exists_upstream(
            artifact.group_id, artifact.artifact_id, marker.upstream
        ):
            raise InvalidInput(
                f"{artifact.package}:{version} patches version {marker.upstream}, which no "
                "upstream repository has; deploy with the header X-Graft-Allow-Missing-Upstream: "
                "true (graft publish maven --allow-missing-upstream) if that is intended"
            )
    else:
        kind = "private"
        if await service.exists_upstream(artifact.group_id, artifact.artifact_id, None):
            raise Conflict(
                f"{artifact.package} exists upstream: deploy a patched build as "
                f"{version}-{ctx.settings.patch_label}.<N>, or claim the name for this "
                "organization with the header X-Graft-Private: true (graft publish maven "
                "--private); it is then never taken from upstream"
            )

    same_version = [f for f in existing if f.version == version and f is not replaced]
    for f in same_version:
        fixes += [x for x in f.fixes if x not in fixes]
    digest = await _store(ctx, received)
    attrs: dict[str, object] = {
        "md5": received.hashes["md5"],
        "sha1": received.hashes["sha1"],
        "sha512": received.hashes["sha512"],
        "classifier": artifact.classifier,
        "extension": layout.SIGNATURE if repo_path.signature else artifact.extension,
    }
    if parsed is not None:
        attrs["packaging"] = parsed.packaging
    if replaced is not None:
        await ctx.catalog.remove(principal.org_id, ECOSYSTEM, replaced.id)
    stored = await ctx.catalog.add(
        org_id=principal.org_id,
        ecosystem=ECOSYSTEM,
        package=artifact.package,
        version=version,
        upstream_version=upstream_version,
        kind=kind,
        filename=filename,
        digest=digest,
        size=received.size,
        fixes=fixes,
        attrs=attrs,
        created_by=principal.account_id,
    )
    if fixes and any(set(fixes) - set(f.fixes) for f in same_version):
        await ctx.catalog.add_fixes(principal.org_id, ECOSYSTEM, artifact.package, version, fixes)
    return stored


def _builds(existing: tuple[CatalogFile, ...], upstream: str, label: str) -> list[int]:
    found = [0]
    for f in existing:
        with contextlib.suppress(ValueError):
            m = versions.patch_marker(f.version, label)
            if m is not None and m.upstream == upstream:
                found.append(m.build)
    return found


async def _store(ctx: AppContext, received: Received) -> str:
    expected = f"sha256:{received.hashes['sha256']}"
    try:
        with received.path.open("rb") as fh:

            async def chunks() -> AsyncIterator[bytes]:
                while block := await anyio.to_thread.run_sync(fh.read, 1 << 20):
                    yield block

            return await ctx.blobs.put(chunks(), expected)
    except DigestMismatch:
        raise InvalidInput("the upload changed while it was stored; nothing was stored") from None


async def deploy_checksum(
    ctx: AppContext,
    service: MavenService,
    principal: Principal,
    repo_path: layout.RepoPath,
    body: bytes,
) -> CatalogFile:
    """Check a deployed checksum against the file it covers."""
    artifact, algorithm = repo_path.artifact, repo_path.checksum
    if artifact is None or algorithm is None:
        raise InvalidInput(f"{repo_path.path} is not the checksum of an artifact")
    target = repo_path.target
    stored = next(
        (
            f
            for f in await service.local(principal.org_id, artifact.package)
            if f.filename == target
        ),
        None,
    )
    if stored is None:
        raise NotFound(f"{target} was not deployed: upload the file before its checksum")
    sent = checksums.parse(body, algorithm)
    held = (
        stored.digest.removeprefix("sha256:")
        if algorithm == "sha256"
        else stored.attrs.get(algorithm)
    )
    if sent is None:
        raise InvalidInput(f"{repo_path.path} holds no {algorithm} digest")
    if sent != held:
        fresh = dt.datetime.now(dt.UTC) - stored.created_at < RETRACT_WINDOW
        if fresh and stored.created_by == principal.account_id:
            await ctx.catalog.remove(principal.org_id, ECOSYSTEM, stored.id)
            raise InvalidInput(
                f"the {algorithm} sent for {target} is {sent}, but the file Graft received hashes "
                f"to {held}: the upload was damaged, so it was withdrawn; deploy again"
            )
        raise Conflict(f"{target} is already deployed with {algorithm} {held}, not {sent}")
    return stored


async def deploy_local(
    ctx: AppContext, principal: Principal, path: Path, repo_path: str, **options: object
) -> CatalogFile:
    """Deploy a file already on disk (the `Ecosystem.publish` entry point)."""
    parsed = layout.parse_path(repo_path)
    hashers = {a: hashlib.new(a) for a in layout.CHECKSUMS}

    def digest() -> int:
        size = 0
        with path.open("rb") as fh:
            while block := fh.read(_BATCH):
                size += len(block)
                for h in hashers.values():
                    h.update(block)
        return size

    size = await anyio.to_thread.run_sync(digest)
    received = Received(path, size, {a: h.hexdigest() for a, h in hashers.items()})
    fixes = options.get("fixes") or ()
    deploy = DeployOptions(
        fixes=tuple(str(f) for f in fixes) if isinstance(fixes, list | tuple) else (str(fixes),),
        private=bool(options.get("private", False)),
        allow_missing_upstream=bool(options.get("allow_missing_upstream", False)),
    )
    return await deploy_file(ctx, MavenService(ctx), principal, parsed, received, deploy)
