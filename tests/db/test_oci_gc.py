"""Registry garbage collection on both database backends: what is unreferenced goes, what a
running push holds stays."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import update

from graft.blobs import FilesystemBlobStore
from graft.db import Database
from graft.db.models import OciBlobLink, OciUpload
from graft.ecosystems.oci.gc import collect
from graft.ecosystems.oci.manifests import parse
from graft.ecosystems.oci.store import MetaStore, org_space
from graft.ecosystems.oci.uploads import UploadStore
from tests.fixtures.oci import OCI_MANIFEST, make_image, sha256


async def age_links(db: Database, hours: float) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    async with db.session() as s:
        await s.execute(update(OciBlobLink).values(touched_at=old))


async def age_uploads(db: Database, upload_id: str, hours: float) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    async with db.session() as s:
        await s.execute(update(OciUpload).where(OciUpload.id == upload_id).values(updated_at=old))


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_gc_removes_unreferenced_blobs_and_keeps_pushes(db: Database, tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    uploads = UploadStore(db, blobs)
    meta = MetaStore(db)
    repo = await meta.repository_id(org_space(1), "team/app", create=True)
    assert repo is not None
    img = make_image("gc")
    for digest, data in img.blobs.items():
        await meta.link(repo, digest)
        await blobs.put(data, expected=digest)
    await blobs.put(img.manifest, expected=img.digest)
    await meta.put_manifest(
        repo, img.digest, len(img.manifest), parse(img.manifest, OCI_MANIFEST), "v1"
    )
    orphan = b"pushed, never referenced"
    await meta.link(repo, sha256(orphan))
    await blobs.put(orphan)
    await age_links(db, 2)
    # a push in progress: its blob was just uploaded (fresh link), its manifest not yet sent
    running = b"layer of a running push"
    await meta.link(repo, sha256(running))
    await blobs.put(running)
    idle = await uploads.create(org_space(1), "team/app")
    await uploads.append(idle, chunks(b"abandoned"))
    await age_uploads(db, idle.id, hours=2)
    live = await uploads.create(org_space(1), "team/app")

    result = await collect(meta, blobs, uploads, grace_seconds=3600, upload_idle_seconds=3600)
    assert (result.uploads, result.unlinked, result.deleted) == (1, 1, 1)
    assert not await blobs.exists(sha256(orphan))
    assert await blobs.exists(sha256(running)) and await meta.has_blob(repo, sha256(running))
    for digest in img.blobs:
        assert await blobs.exists(digest)
    assert await uploads.get(live.id, org_space(1), "team/app") is not None
    assert await uploads.get(idle.id, org_space(1), "team/app") is None
    assert not (tmp_path / "blobs" / "oci-uploads" / idle.id).exists()  # its chunks went too

    # once the manifest is deleted its blobs (and its own bytes) go after the grace period
    assert await meta.delete_manifest(repo, img.digest)
    await age_links(db, 2)
    await meta.has_blob(repo, sha256(running), touch=True)  # the pusher asked again: renewed
    result = await collect(meta, blobs, uploads, grace_seconds=3600)
    assert result.deleted == len(img.blobs) + 1
    assert not await blobs.exists(img.digest)
    assert await blobs.exists(sha256(running))


async def test_a_blob_used_elsewhere_is_never_deleted(db: Database, tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    uploads = UploadStore(db, blobs)
    meta = MetaStore(db)
    a = await meta.repository_id(org_space(1), "a", create=True)
    b = await meta.repository_id(org_space(1), "b", create=True)
    assert a is not None and b is not None
    data = b"shared"
    await meta.link(a, sha256(data))
    await meta.link(b, sha256(data))
    await blobs.put(data)
    assert await meta.unlink(a, sha256(data))  # a candidate now, but b still links it
    result = await collect(meta, blobs, uploads, grace_seconds=3600)
    assert result.deleted == 0 and await blobs.exists(sha256(data))
    # a new link made after the candidate was marked wins over the collection
    assert await meta.unlink(b, sha256(data))
    await meta.link(a, sha256(data))
    result = await collect(meta, blobs, uploads, grace_seconds=3600)
    assert result.deleted == 0 and await blobs.exists(sha256(data))
