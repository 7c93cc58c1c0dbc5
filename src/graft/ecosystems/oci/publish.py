"""`graft publish oci`: import an OCI image layout archive (as `skopeo copy … oci-archive:` or
`buildah push … oci-archive:` write it) into one of the organization's repositories.

Every blob is verified against its file name before it is stored; manifests are checked like a
push (every blob they name must be in the archive), and the tag is set last, so a bad archive
leaves no tag behind.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from graft.accounts.models import Principal
from graft.blobs import DigestMismatch, digest_of
from graft.context import AppContext
from graft.ecosystems.base import PublishResult
from graft.ecosystems.oci import errors
from graft.ecosystems.oci.manifests import MAX_MANIFEST_BYTES, parse
from graft.ecosystems.oci.names import MANIFEST_TYPES, valid_digest, valid_name, valid_tag
from graft.ecosystems.oci.store import MetaStore, org_space
from graft.errors import InvalidInput

REF_NAME = "org.opencontainers.image.ref.name"


def _member_digest(name: str) -> str | None:
    parts = name.removeprefix("./").split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        digest = f"{parts[1]}:{parts[2]}"
        return digest if valid_digest(digest) else None
    return None


async def publish_archive(
    ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
) -> PublishResult:
    repository = str(options.get("repository") or "")
    tag = options.get("tag")
    if not valid_name(repository):
        raise InvalidInput(f"invalid repository name {repository!r} (e.g. library/python)")
    if tag is not None and not valid_tag(str(tag)):
        raise InvalidInput(f"invalid tag {tag!r}")
    if not tarfile.is_tarfile(path):
        raise InvalidInput(f"{filename} is not an OCI image layout archive (a tar file)")
    meta = MetaStore(ctx.db)
    repo = await meta.repository_id(org_space(principal.org_id), repository, create=True)
    assert repo is not None
    stored: dict[str, int] = {}
    with tarfile.open(path) as archive:
        names = {m.name.removeprefix("./"): m for m in archive.getmembers()}
        index_member = archive.extractfile(names["index.json"]) if "index.json" in names else None
        if index_member is None:
            raise InvalidInput(f"{filename} has no index.json: not an OCI image layout")
        index = json.loads(index_member.read())
        for member in archive.getmembers():
            digest = _member_digest(member.name)
            if digest is None or not member.isfile():
                continue
            data = archive.extractfile(member)
            assert data is not None
            await meta.link(repo, digest)
            try:
                async with ctx.blobs.writer(max_size=ctx.settings.max_upload_bytes) as w:
                    while chunk := data.read(1 << 20):
                        await w.write(chunk)
                    await w.commit(digest)
            except DigestMismatch as exc:
                await meta.unlink(repo, digest)
                raise InvalidInput(f"{member.name} holds {exc.actual}, not {digest}") from None
            stored[digest] = member.size
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InvalidInput(f"{filename}: index.json lists no manifest")
    published: list[str] = []
    tags: list[str] = []
    # Children of an index before the index itself, so every check sees what it needs.
    pending = [e for e in entries if isinstance(e, dict)]
    order: list[tuple[str, str, str | None]] = []
    for entry in pending:
        digest, media_type = entry.get("digest"), entry.get("mediaType")
        if digest not in stored or media_type not in MANIFEST_TYPES:
            raise InvalidInput(f"{filename}: index.json names {digest!r}, not in the archive")
        ref = (entry.get("annotations") or {}).get(REF_NAME) or tag
        order.append((str(digest), str(media_type), str(ref) if ref else None))
    for digest, media_type, ref in order:
        body = await ctx.blobs.read_bytes(digest)
        if len(body) > MAX_MANIFEST_BYTES:
            raise InvalidInput(f"manifest {digest} is larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            parsed = parse(body, media_type)
            for child in parsed.manifests:
                child_body = await ctx.blobs.read_bytes(child.digest)
                await meta.put_manifest(
                    repo, child.digest, len(child_body), parse(child_body, child.media_type), None
                )
            missing = await meta.missing_references(repo, parsed)
        except errors.OCIError as exc:
            raise InvalidInput(f"manifest {digest}: {exc.message}") from None
        if missing is not None:
            raise InvalidInput(f"manifest {digest} names {missing}, which is not in the archive")
        if ref is not None and not valid_tag(ref):
            raise InvalidInput(f"invalid tag {ref!r} in index.json")
        await meta.put_manifest(repo, digest, len(body), parsed, ref)
        published.append(digest)
        if ref:
            tags.append(ref)
    label = ctx.settings.patch_label
    from graft.ecosystems.oci.routes import patched_tag

    return PublishResult(
        ecosystem="oci",
        package=repository,
        version=tags[0] if tags else published[0],
        digests=tuple(published),
        patched=any(patched_tag(t, label) for t in tags),
        detail={"repository": repository, "tags": tags, "blobs": len(stored)},
    )


__all__ = ["digest_of", "publish_archive"]
