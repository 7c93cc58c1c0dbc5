"""OCI chunked upload sessions in the database, with their chunks as scratch objects of the
blob store, on both database backends and both blob stores (the filesystem, and S3 through
moto's standalone server): two stores sharing them behave as two replicas."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select, update

from graft.blobs import BlobStore, BlobTooLarge, DigestMismatch, FilesystemBlobStore
from graft.blobs.s3 import MIN_PART_BYTES, S3BlobStore
from graft.db import Database
from graft.db.models import OciUpload, OciUploadChunk
from graft.ecosystems.oci.store import org_space
from graft.ecosystems.oci.uploads import (
    LengthMismatch,
    OffsetConflict,
    UploadGone,
    UploadStore,
)
from tests.fixtures.oci import sha256
from tests.fixtures.s3 import MotoServer

SPACE = org_space(1)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


def s3_store(moto: MotoServer, bucket: str) -> S3BlobStore:
    s = moto.settings(bucket)
    return S3BlobStore(
        bucket,
        prefix="graft",
        endpoint_url=str(s["s3_endpoint_url"]),
        region=str(s["s3_region"]),
        access_key_id=str(s["s3_access_key_id"]),
        secret_access_key=str(s["s3_secret_access_key"]),
        addressing_style="path",
        part_bytes=MIN_PART_BYTES,
    )


@pytest.fixture(params=["filesystem", "s3"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[BlobStore, BlobStore]]:
    """Two blob store objects over the same storage: what two replicas hold."""
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs"), FilesystemBlobStore(tmp_path / "blobs")
        return
    moto: MotoServer = request.getfixturevalue("moto")
    bucket = moto.new_bucket()
    a, b = s3_store(moto, bucket), s3_store(moto, bucket)
    yield a, b
    await a.close()
    await b.close()


@pytest.fixture
def replicas(db: Database, stores: tuple[BlobStore, BlobStore]) -> tuple[UploadStore, UploadStore]:
    return UploadStore(db, stores[0]), UploadStore(db, stores[1])


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def broken(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise ConnectionResetError("client went away")


async def scratch_names(uploads: UploadStore) -> list[str]:
    return sorted(await uploads.scratch.stale(-60))  # every object, however new


async def test_chunks_taken_by_two_replicas_finish_as_one_verified_blob(
    replicas: tuple[UploadStore, UploadStore], stores: tuple[BlobStore, BlobStore]
) -> None:
    a, b = replicas
    data = random.Random(1).randbytes(300_000)
    upload = await a.create(SPACE, "team/app")
    assert await b.get(upload.id, SPACE, "team/app") == upload
    assert await b.get(upload.id, SPACE, "other/app") is None
    assert await b.get("not-an-id", SPACE, "team/app") is None
    assert await b.append(upload, body(data[:1000], data[1000:100_000])) == 100_000
    seen = await a.get(upload.id, SPACE, "team/app")
    assert seen is not None and seen.size == 100_000
    assert await a.append(seen, body(data[100_000:250_000]), expected_length=150_000) == 250_000
    seen = await b.get(upload.id, SPACE, "team/app")
    assert seen is not None
    assert await b.append(seen, body(data[250_000:])) == len(data)
    assert len(await scratch_names(a)) == 3
    # an empty body (a PUT without a last chunk) adds nothing
    assert await b.append(replace(seen, size=len(data)), body()) == len(data)
    assert not await stores[1].exists(sha256(data))
    await b.finish(upload, sha256(data))
    assert await stores[0].read_bytes(sha256(data)) == data
    await b.remove(upload)
    assert await a.get(upload.id, SPACE, "team/app") is None
    assert await scratch_names(a) == []
    with pytest.raises(UploadGone):
        await a.finish(upload, sha256(data))
    with pytest.raises(UploadGone):
        await a.append(seen, body(b"late"))


async def test_one_chunk_is_published_by_import_on_the_filesystem(
    db: Database, tmp_path: Path
) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    uploads = UploadStore(db, blobs)
    upload = await uploads.create(SPACE, "team/app")
    await uploads.append(upload, body(b"one layer"))
    (name,) = await scratch_names(uploads)
    chunk = uploads.scratch.local_path(name)
    assert chunk is not None and chunk.is_relative_to(tmp_path / "blobs" / "oci-uploads")
    inode = chunk.stat().st_ino
    await uploads.finish(upload, sha256(b"one layer"))
    published = blobs.local_path(sha256(b"one layer"))
    assert published is not None and published.stat().st_ino == inode  # moved, not copied
    await uploads.remove(upload)
    assert not (tmp_path / "blobs" / "oci-uploads" / upload.id).exists()


async def test_two_chunks_for_the_same_offset_one_wins(
    replicas: tuple[UploadStore, UploadStore], stores: tuple[BlobStore, BlobStore]
) -> None:
    a, b = replicas
    upload = await a.create(SPACE, "team/app")
    assert await a.append(upload, body(b"first")) == 5
    with pytest.raises(OffsetConflict) as refused:  # b still thinks the upload is empty
        await b.append(upload, body(b"FIRST!"))
    assert refused.value.size == 5
    assert len(await scratch_names(a)) == 1  # the loser's bytes are gone
    # at once, from two replicas: exactly one of them moves the offset
    now = await b.get(upload.id, SPACE, "team/app")
    assert now is not None
    results = await asyncio.gather(
        a.append(now, body(b" second")), b.append(now, body(b" SECOND")), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["OffsetConflict", "int"]
    won = b" second" if results[0] == 12 else b" SECOND"
    assert len(await scratch_names(a)) == 2
    await a.finish(upload, sha256(b"first" + won))
    assert await stores[1].read_bytes(sha256(b"first" + won)) == b"first" + won


async def test_a_refused_or_broken_chunk_leaves_the_session_as_it_was(
    replicas: tuple[UploadStore, UploadStore], db: Database
) -> None:
    a, b = replicas
    upload = await a.create(SPACE, "team/app")
    await a.append(upload, body(b"kept"))
    at = await a.get(upload.id, SPACE, "team/app")
    assert at is not None and at.size == 4
    with pytest.raises(ConnectionResetError):
        await b.append(at, broken(b"half a chunk"))
    with pytest.raises(LengthMismatch):
        await b.append(at, body(b"short"), expected_length=10)
    with pytest.raises(BlobTooLarge):
        await b.append(at, body(b"x" * 100), limit=50)
    again = await a.get(upload.id, SPACE, "team/app")
    assert again == at
    assert len(await scratch_names(a)) == 1
    async with db.session() as s:
        assert list(await s.scalars(select(OciUploadChunk.offset))) == [0]
    # the client's retry of the chunk succeeds, and the result is exact
    assert await b.append(at, body(b" and more")) == 13
    with pytest.raises(DigestMismatch):
        await b.finish(upload, sha256(b"something else"))
    assert not await b.blobs.exists(sha256(b"something else"))
    assert not await b.blobs.exists(sha256(b"kept and more"))
    await b.finish(upload, sha256(b"kept and more"))
    assert await a.blobs.read_bytes(sha256(b"kept and more")) == b"kept and more"


async def test_sweep_removes_idle_sessions_and_orphan_chunks(
    replicas: tuple[UploadStore, UploadStore], db: Database
) -> None:
    a, b = replicas
    idle = await a.create(SPACE, "team/app")
    await a.append(idle, body(b"abandoned"))
    live = await b.create(SPACE, "team/app")
    await b.append(live, body(b"running"))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    async with db.session() as s:
        await s.execute(update(OciUpload).where(OciUpload.id == idle.id).values(updated_at=old))
    # a chunk a killed replica wrote but never recorded, for a session that is gone
    await a.scratch.write(f"{'0' * 32}/000000000000000-dead", body(b"debris"))
    assert await b.sweep(3600) == 1
    assert await a.get(idle.id, SPACE, "team/app") is None
    names = await scratch_names(a)
    assert [n.split("/")[0] for n in names] == sorted([live.id, "0" * 32])  # debris is new
    assert await a.sweep(0) == 1  # idle for 0 s: everything goes, orphans too
    assert await scratch_names(a) == []


async def test_large_chunks_on_s3_go_by_multipart_upload(moto: MotoServer, db: Database) -> None:
    store = s3_store(moto, moto.new_bucket())
    try:
        uploads = UploadStore(db, store)
        data = random.Random(2).randbytes(MIN_PART_BYTES + 123_456)
        upload = await uploads.create(SPACE, "team/big")
        pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        assert await uploads.append(upload, body(*pieces)) == len(data)
        (name,) = await scratch_names(uploads)
        listed = moto.client().list_objects_v2(Bucket=store.bucket)["Contents"]
        assert [o["Key"] for o in listed] == [f"graft/oci-uploads/{name}"]
        assert name.startswith(f"{upload.id}/000000000000000-")
        await uploads.finish(upload, sha256(data))
        await uploads.remove(upload)
        assert await store.read_bytes(sha256(data)) == data
        # a chunk broken off after a part was sent leaves no unfinished multipart upload
        other = await uploads.create(SPACE, "team/big")
        with pytest.raises(ConnectionResetError):
            await uploads.append(other, broken(data))
        for task in list(store._tasks):  # the abort runs in the background
            await task
        assert not moto.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads")
        assert await scratch_names(uploads) == []
    finally:
        await store.close()
