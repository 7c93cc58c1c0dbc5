"""Publishing npm tarballs: patched builds (`<upstream>-<label>.<N>`) and private packages.

Two ways in, one path: `npm publish` (a JSON document with the tarball as a base64 attachment,
`PUT /npm/<name>`) and `graft publish npm FILE.tgz` (multipart, with `--fixes`). Checks, in
order, before anything is stored: the tarball opens and holds a package.json whose name and
version are valid (and agree with the URL), the integrity the client sent matches the bytes,
the version is not already published, a patched build's label is the configured one and the
upstream version it patches exists (unless allowed), and a new private name does not exist
upstream (unless claimed with --private). The version document served later is built from
the package.json inside the tarball, never from the client's claims.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graft.accounts.models import Principal
from graft.catalog import CatalogFile
from graft.catalog.service import Kind
from graft.context import AppContext
from graft.ecosystems.npm import versions
from graft.ecosystems.npm.names import PackageName, catalog_filename, parse_name
from graft.ecosystems.npm.packument import version_document
from graft.ecosystems.npm.service import ECOSYSTEM, NpmService
from graft.ecosystems.npm.tarballs import TarballInfo, parse_integrity, read_tarball
from graft.errors import Conflict, Forbidden, InvalidInput

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True, slots=True)
class PublishOptions:
    fixes: tuple[str, ...] = ()
    allow_missing_upstream: bool = False
    private: bool = False  # claim a name that also exists upstream, for this organization
    tags: tuple[str, ...] = ()  # dist-tags to point at the new version (npm publish --tag)
    claimed: Mapping[str, str] = field(default_factory=dict)  # algorithm -> hex, from client
    expected_name: str | None = None  # the name in the URL


@dataclass(frozen=True, slots=True)
class Published:
    file: CatalogFile
    name: PackageName
    tags: tuple[str, ...]


def check_tag(tag: str) -> str:
    if not _TAG.match(tag) or versions.valid_range(tag) is not None:
        raise InvalidInput(
            f"{tag!r} is not a usable dist-tag: use letters, digits, '.', '_' or '-', and "
            "nothing that reads as a version range (such as 1.x)"
        )
    return tag


async def publish_tarball(
    ctx: AppContext,
    service: NpmService,
    principal: Principal,
    path: Path,
    filename: str,
    options: PublishOptions,
) -> Published:
    info = read_tarball(path, filename)
    name = parse_name(info.manifest["name"], new=True)
    if options.expected_name is not None and name.name != options.expected_name:
        raise InvalidInput(
            f"the tarball is {name.name}'s, but it was published to {options.expected_name}"
        )
    parsed = versions.parse(info.manifest["version"])
    if parsed is None:
        raise InvalidInput(f"{filename}: {info.manifest['version']!r} is not a semver version")
    version = parsed.version
    _check_claims(info, options.claimed, filename)

    existing = await ctx.catalog.files(principal.org_id, ECOSYSTEM, name.name)
    if any(f.version == version for f in existing):
        raise Conflict(
            f"cannot publish over the previously published version {name.name}@{version}; "
            "published versions cannot be replaced"
        )
    private_package = any(f.kind == "private" for f in existing)
    label = ctx.settings.patch_label
    try:
        marker = versions.patch_marker(parsed, label)
    except ValueError as exc:
        raise InvalidInput(f"{name.name}@{version}: {exc}") from None

    upstream_version: str | None = None
    kind: Kind
    if private_package or (marker is None and options.private):
        kind = "private"
    elif marker is not None:
        kind = "patched"
        upstream_version = marker.upstream
        await _check_patched(service, name, version, marker.upstream, options)
    else:
        kind = "private"
        if await service.upstream(name) is not None:
            raise Forbidden(
                f"{name.name} exists upstream: publish a patched build as "
                f"{versions.patched_version(version, label, 1)} (npm publish --tag patched), or "
                f"claim the name for this organization with `graft publish npm --private` "
                "(it is then never taken from upstream)"
            )

    digest = await _store(ctx, path)
    file = await ctx.catalog.add(
        org_id=principal.org_id,
        ecosystem=ECOSYSTEM,
        package=name.name,
        version=version,
        upstream_version=upstream_version,
        kind=kind,
        filename=catalog_filename(name, version),
        digest=digest,
        size=info.size,
        fixes=list(options.fixes),
        attrs={"document": version_document(name, info), "integrity": info.integrity},
        created_by=principal.account_id,
    )
    tags = await _apply_tags(ctx, principal, name, version, kind, options.tags, existing)
    return Published(file, name, tags)


def _check_claims(info: TarballInfo, claimed: Mapping[str, str], filename: str) -> None:
    actual = {"sha512": info.sha512, "sha1": info.sha1}
    for algorithm, hexdigest in claimed.items():
        if algorithm in actual and actual[algorithm] != hexdigest.lower():
            raise InvalidInput(
                f"{filename}: the tarball's {algorithm} is {actual[algorithm]}, but the "
                f"publish document says {hexdigest.lower()}: the upload was damaged; "
                "nothing was stored"
            )


async def _check_patched(
    service: NpmService, name: PackageName, version: str, upstream: str, options: PublishOptions
) -> None:
    found = await service.upstream(name)
    known = found[2].versions if found else {}
    if version in known:
        raise Conflict(f"{name.name}@{version} exists upstream; pick the next build number")
    if options.allow_missing_upstream:
        return
    wanted = versions.parse(upstream)
    if not any((p := versions.parse(v, True)) and wanted and p.compare(wanted) == 0 for v in known):
        raise InvalidInput(
            f"{name.name}@{version} patches {name.name}@{upstream}, which no upstream has; "
            "publish with `graft publish npm --allow-missing-upstream` if that is intended"
        )


async def _apply_tags(
    ctx: AppContext,
    principal: Principal,
    name: PackageName,
    version: str,
    kind: Kind,
    requested: tuple[str, ...],
    existing: tuple[CatalogFile, ...],
) -> tuple[str, ...]:
    tags = list(requested)
    if kind == "patched":
        # `latest` stays the upstream's: a patched build is reached by a pin or an override.
        tags = [t for t in tags if t != "latest"]
    elif not tags:
        current = (await ctx.catalog.tags(principal.org_id, ECOSYSTEM, name.name)).get("latest")
        parsed = versions.parse(version)
        newer = current is None or (
            parsed is not None
            and not parsed.prerelease
            and (c := versions.parse(current, True)) is not None
            and parsed.compare(c) > 0
        )
        if newer:
            tags = ["latest"]
    for tag in tags:
        await ctx.catalog.set_tag(principal.org_id, ECOSYSTEM, name.name, check_tag(tag), version)
    return tuple(tags)


async def _store(ctx: AppContext, path: Path) -> str:
    with path.open("rb") as fh:

        async def chunks() -> AsyncIterator[bytes]:
            while block := fh.read(1 << 20):
                yield block

        return await ctx.blobs.put(chunks())


# -- `npm publish`: the JSON document -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PublishDocument:
    version: str
    tarball: bytes
    attachment: str
    claimed: dict[str, str]
    tags: tuple[str, ...]


def read_publish_document(doc: object, name: PackageName) -> PublishDocument:
    """The new version and its tarball from what `npm publish` PUTs; InvalidInput otherwise."""
    if not isinstance(doc, dict):
        raise InvalidInput("the publish document is not a JSON object")
    if doc.get("name", name.name) != name.name:
        raise InvalidInput(f"the document is for {doc.get('name')!r}, not {name.name!r}")
    vdocs = doc.get("versions")
    attachments = doc.get("_attachments")
    if not isinstance(attachments, dict) or not attachments:
        raise InvalidInput(
            "Graft accepts publishes only (a document with a tarball attachment); "
            "changing a published package's document (deprecate, owner, unpublish) is not "
            "supported"
        )
    if not isinstance(vdocs, dict) or not vdocs:
        raise InvalidInput("the publish document has no versions")
    tgz = {k: v for k, v in attachments.items() if isinstance(k, str) and k.endswith(".tgz")}
    if len(tgz) != 1:
        raise InvalidInput(f"expected one .tgz attachment, got {len(tgz)}")
    key, attachment = next(iter(tgz.items()))
    candidates = [
        v for v in vdocs if isinstance(v, str) and key.rsplit("/", 1)[-1] == name.tarball(v)
    ]
    if len(candidates) != 1:
        candidates = list(vdocs) if len(vdocs) == 1 else []
    if len(candidates) != 1 or not isinstance(vdocs[candidates[0]], dict):
        raise InvalidInput(f"no version in the document matches the attachment {key!r}")
    version = candidates[0]
    if not isinstance(attachment, dict) or not isinstance(attachment.get("data"), str):
        raise InvalidInput(f"attachment {key!r} has no base64 data")
    try:
        data = base64.b64decode(attachment["data"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"attachment {key!r} is not valid base64") from None
    length = attachment.get("length")
    if isinstance(length, int) and length != len(data):
        raise InvalidInput(
            f"attachment {key!r} is {len(data)} bytes, but the document says {length}: the "
            "upload was damaged; nothing was stored"
        )
    dist: Any = vdocs[version].get("dist") or {}
    claimed = (
        parse_integrity(dist.get("integrity"), dist.get("shasum")) if isinstance(dist, dict) else {}
    )
    raw_tags = doc.get("dist-tags")
    tags = tuple(
        t for t, v in (raw_tags.items() if isinstance(raw_tags, dict) else ()) if v == version
    )
    return PublishDocument(version, data, key, claimed, tags)


@contextlib.contextmanager
def spooled_bytes(data: bytes, data_dir: Path) -> Iterator[Path]:
    """The bytes in a temporary file under the data directory, removed afterwards."""
    fd, tmp = tempfile.mkstemp(prefix="upload-", dir=data_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
