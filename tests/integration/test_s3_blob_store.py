"""The S3 blob store against a local S3-compatible server (moto's standalone server): the same
guarantees as the filesystem store — nothing partial or unverified at a content address,
abandoned multipart uploads cleaned up, ranged reads — plus presigned download URLs."""

from __future__ import annotations

import asyncio
import hashlib
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graft.blobs import (
    BlobError,
    BlobNotFound,
    BlobTooLarge,
    DigestMismatch,
    InvalidDigest,
    InvalidRange,
    digest_of,
    sha256_digest,
)
from graft.blobs.s3 import MIN_PART_BYTES, S3BlobStore
from tests.fixtures.s3 import MotoServer

MIB = 1 << 20
PART = MIN_PART_BYTES


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


def make_store(moto: MotoServer, bucket: str, **kwargs: Any) -> S3BlobStore:
    s = moto.settings(bucket)
    return S3BlobStore(
        bucket,
        endpoint_url=str(s["s3_endpoint_url"]),
        region=str(s["s3_region"]),
        access_key_id=str(s["s3_access_key_id"]),
        secret_access_key=str(s["s3_secret_access_key"]),
        addressing_style="path",
        part_bytes=PART,
        **kwargs,
    )


@pytest.fixture
async def store(moto: MotoServer) -> AsyncIterator[S3BlobStore]:
    s = make_store(moto, moto.new_bucket(), prefix="graft")
    yield s
    await s.close()


def keys(moto: MotoServer, bucket: str) -> list[str]:
    listed = moto.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def uploads(moto: MotoServer, bucket: str) -> list[str]:
    listed = moto.client().list_multipart_uploads(Bucket=bucket)
    return sorted(u["Key"] for u in listed.get("Uploads", []))


async def settled(store: S3BlobStore) -> None:
    """Wait for the background cleanup a writer left behind (abandoned on exit)."""
    for task in list(store._tasks):
        await task


async def test_small_round_trip_and_layout(store: S3BlobStore, moto: MotoServer) -> None:
    data = b"hello blob"
    digest = await store.put(data)
    assert digest == sha256_digest(data)
    hex_ = digest.removeprefix("sha256:")
    assert keys(moto, store.bucket) == [f"graft/sha256/{hex_[:2]}/{hex_}"]
    assert await store.exists(digest) and await store.size(digest) == len(data)
    assert await store.read_bytes(digest) == data
    assert await store.put(data) == digest  # the same content again: one object
    assert len(keys(moto, store.bucket)) == 1
    assert store.local_file(digest) is None and store.local_path(digest) is None
    # Another process (a fresh store object) sees it and deletes it; this one remembers what
    # it saw for size_cache_seconds (here 0: at once).
    other = make_store(moto, store.bucket, prefix="graft/")
    try:
        assert await other.read_bytes(digest) == data
        assert await other.delete(digest) is True
        assert await other.delete(digest) is False
    finally:
        await other.close()
    store.size_cache_seconds = 0
    assert not await store.exists(digest)
    with pytest.raises(BlobNotFound):
        await store.read_bytes(digest)
    with pytest.raises(BlobNotFound):
        await store.size(digest)


async def test_empty_blob(store: S3BlobStore) -> None:
    digest = await store.put(b"")
    assert digest == sha256_digest(b"")
    assert await store.read_bytes(digest) == b""


async def test_invalid_digests_are_refused(store: S3BlobStore) -> None:
    with pytest.raises(InvalidDigest):
        await store.exists("sha256:ABC")
    with pytest.raises(InvalidDigest):
        await store.put(b"x", "md5:00")


async def test_large_write_goes_multipart_and_commits_verified(
    store: S3BlobStore, moto: MotoServer
) -> None:
    data = payload(2 * PART + 123_457, seed=1)
    async with store.writer() as w:
        for off in range(0, len(data), 300_000):
            await w.write(data[off : off + 300_000])
        assert w._upload_id is not None  # parts were sent while the data streamed
        assert uploads(moto, store.bucket) != []
        assert not await store.exists(sha256_digest(data))  # nothing visible yet
        digest = await w.commit(sha256_digest(data))
    assert digest == sha256_digest(data)
    hex_ = digest.removeprefix("sha256:")
    # Only the content address is left: no temporary object, no open multipart upload.
    assert keys(moto, store.bucket) == [f"graft/sha256/{hex_[:2]}/{hex_}"]
    assert uploads(moto, store.bucket) == []
    assert await store.read_bytes(digest) == data


@pytest.mark.parametrize("size", [1000, 2 * PART + 5])
async def test_digest_mismatch_stores_nothing(
    store: S3BlobStore, moto: MotoServer, size: int
) -> None:
    data = payload(size, seed=2)
    wrong = sha256_digest(b"something else")
    with pytest.raises(DigestMismatch) as info:
        await store.put(data, wrong)
    assert info.value.actual == sha256_digest(data)
    await settled(store)
    assert keys(moto, store.bucket) == []
    assert uploads(moto, store.bucket) == []


async def test_max_size(store: S3BlobStore, moto: MotoServer) -> None:
    with pytest.raises(BlobTooLarge):
        await store.put(payload(PART + 10, seed=3), max_size=PART + 9)
    await settled(store)
    assert keys(moto, store.bucket) == [] and uploads(moto, store.bucket) == []


async def test_exception_inside_writer_aborts_the_multipart_upload(
    store: S3BlobStore, moto: MotoServer
) -> None:
    with pytest.raises(RuntimeError):
        async with store.writer() as w:
            await w.write(payload(PART + 1, seed=4))
            assert uploads(moto, store.bucket) != []
            raise RuntimeError("client went away")
    await settled(store)
    assert uploads(moto, store.bucket) == [] and keys(moto, store.bucket) == []


async def test_cancelled_writer_aborts_the_multipart_upload(
    store: S3BlobStore, moto: MotoServer
) -> None:
    started = asyncio.Event()

    async def upload() -> None:
        async with store.writer() as w:
            await w.write(payload(PART + 1, seed=5))
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(upload())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settled(store)
    assert uploads(moto, store.bucket) == [] and keys(moto, store.bucket) == []


@pytest.mark.parametrize("size", [2000, PART + 77])
async def test_sha512_blobs(store: S3BlobStore, size: int) -> None:
    data = payload(size, seed=6)
    expected = digest_of(data, "sha512")
    assert await store.put(data, expected) == expected
    assert await store.read_bytes(expected) == data
    with pytest.raises(DigestMismatch):
        await store.put(data + b"x", expected)


@pytest.mark.parametrize(
    ("start", "end"), [(0, None), (0, 10), (5, 6), (PART - 3, PART + 3), (100, None), (7, 7)]
)
async def test_ranged_reads(store: S3BlobStore, start: int, end: int | None) -> None:
    data = payload(PART + 10, seed=7)
    digest = await store.put(data)
    got = b"".join([c async for c in store.open(digest, start, end, chunk_size=1 << 16)])
    assert got == data[start:end]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4), (0, 10**9)])
async def test_invalid_ranges(store: S3BlobStore, start: int, end: int | None) -> None:
    digest = await store.put(b"0123456789")
    with pytest.raises(InvalidRange):
        async for _ in store.open(digest, start, end):
            pass


async def test_concurrent_writers_of_the_same_content(store: S3BlobStore, moto: MotoServer) -> None:
    data = payload(PART + 1000, seed=8)
    results = await asyncio.gather(*(store.put(data) for _ in range(3)))
    assert set(results) == {sha256_digest(data)}
    assert len(keys(moto, store.bucket)) == 1 and uploads(moto, store.bucket) == []


async def test_import_file(store: S3BlobStore, tmp_path: Path) -> None:
    data = payload(PART + 3, seed=9)
    path = tmp_path / "upload.data"
    path.write_bytes(data)
    with pytest.raises(DigestMismatch):
        await store.import_file(path, sha256_digest(b"nope"))
    assert path.exists()  # a mismatch leaves the file in place
    assert await store.import_file(path, sha256_digest(data)) == sha256_digest(data)
    assert not path.exists()
    assert await store.read_bytes(sha256_digest(data)) == data


async def test_presigned_urls(moto: MotoServer) -> None:
    bucket = moto.new_bucket()
    store = make_store(moto, bucket, presign=True, redirect_min_bytes=1000, url_ttl_seconds=60)
    plain = make_store(moto, bucket)
    try:
        big, small = payload(5000, seed=10), b"tiny"
        big_digest, small_digest = await store.put(big), await store.put(small)
        kw: dict[str, str] = {"scheme": "http", "host": "graft.test"}
        assert await store.direct_url(small_digest, len(small), "text/plain", **kw) is None
        assert await plain.direct_url(big_digest, len(big), "text/plain", **kw) is None
        url = await store.direct_url(big_digest, len(big), "application/x-thing", **kw)
        assert url is not None and url.startswith(moto.url) and "X-Amz-Signature" in url
        # reused for a quarter of its lifetime (presigning is the dearest part of a redirect)
        assert await store.direct_url(big_digest, len(big), "application/x-thing", **kw) == url
        other_type = await store.direct_url(big_digest, len(big), "text/plain", **kw)
        assert other_type is not None and other_type != url
        async with httpx.AsyncClient() as client:
            r = await client.get(url)
            assert r.status_code == 200 and r.content == big
            assert r.headers["content-type"] == "application/x-thing"
            part = await client.get(url, headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == big[10:20]
            # (moto does not check signatures unless IAM is simulated: a real store refuses a
            # forged or expired URL; Graft's part is that the URL is signed and short-lived.)
            assert "X-Amz-Expires=60" in url
    finally:
        await store.close()
        await plain.close()


async def test_check(moto: MotoServer) -> None:
    good = make_store(moto, moto.new_bucket())
    missing = make_store(moto, "no-such-bucket-here")
    try:
        await good.check()
        with pytest.raises(BlobError):
            await missing.check()
    finally:
        await good.close()
        await missing.close()


CHILD = textwrap.dedent(
    """
    import asyncio, random, sys
    from graft.blobs.s3 import S3BlobStore

    async def main(url, bucket, size):
        store = S3BlobStore(bucket, endpoint_url=url, region="us-east-1",
            access_key_id="testing", secret_access_key="testing", addressing_style="path",
            part_bytes=5 << 20)
        data = random.Random(11).randbytes(size)
        async with store.writer() as w:
            await w.write(data[: size // 2])
            print("HALF", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def test_killed_writer_leaves_nothing_visible_and_is_cleaned_up(moto: MotoServer) -> None:
    bucket = moto.new_bucket()
    size = 3 * PART
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, moto.url, bucket, str(size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "HALF"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert uploads(moto, bucket) != []  # the half-sent multipart upload is left behind
    assert keys(moto, bucket) == []
    digest = "sha256:" + hashlib.sha256(random.Random(11).randbytes(size)).hexdigest()

    async def check() -> tuple[bool, int, int]:
        store = make_store(moto, bucket)
        try:
            # too recent for an hour's age; then removed
            return (
                await store.exists(digest),
                await store.cleanup_stale_uploads(3600),
                await store.cleanup_stale_uploads(0),
            )
        finally:
            await store.close()

    assert asyncio.run(check()) == (False, 0, 1)
    assert uploads(moto, bucket) == []


async def test_scratch_objects_and_their_abandoned_multipart_uploads(
    store: S3BlobStore, moto: MotoServer
) -> None:
    scratch = store.scratch("oci-uploads")

    async def body(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    assert await scratch.write("u1/0-a", body(b"abc", b"def")) == 6
    assert b"".join([c async for c in scratch.read("u1/0-a")]) == b"abcdef"
    assert keys(moto, store.bucket) == ["graft/oci-uploads/u1/0-a"]
    with pytest.raises(BlobTooLarge):
        await scratch.write("u1/6-b", body(b"x" * 10), max_size=5)
    with pytest.raises(BlobNotFound):
        [c async for c in scratch.read("u1/6-b")]
    for bad in ("../sha256/aa", "/abs", "u1/../x", ""):
        with pytest.raises(ValueError):
            await scratch.write(bad, body(b"x"))
    # a scratch write of a process killed after its first part: aborted by housekeeping,
    # like the blob writers' own (a fresh store object stands for the next process)
    client = moto.client()
    dead = "graft/oci-uploads/u2/0-dead"
    upload_id = client.create_multipart_upload(Bucket=store.bucket, Key=dead)["UploadId"]
    client.upload_part(Bucket=store.bucket, Key=dead, UploadId=upload_id, PartNumber=1, Body=b"x")
    later = make_store(moto, store.bucket, prefix="graft")
    try:
        later.scratch("oci-uploads")
        assert await later.cleanup_stale_uploads(3600) == 0  # too recent
        assert await later.cleanup_stale_uploads(0) == 1
    finally:
        await later.close()
    assert uploads(moto, store.bucket) == []
    assert await scratch.stale(3600) == [] and await scratch.stale(-1) == ["u1/0-a"]
    assert await scratch.delete_tree("u1") == 1
    assert keys(moto, store.bucket) == []
