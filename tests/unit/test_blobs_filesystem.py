from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import graft
from graft.blobs import (
    BlobError,
    BlobNotFound,
    BlobTooLarge,
    DigestMismatch,
    FilesystemBlobStore,
    FilesystemBlobWriter,
    InvalidDigest,
    InvalidRange,
    digest_of,
    parse_digest,
    sha256_digest,
    split_digest,
)

MIB = 1 << 20
CHILD = Path(__file__).with_name("_blob_writer_child.py")


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def final_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


def tmp_files(root: Path) -> list[Path]:
    tmp = root / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def assert_nothing_stored(root: Path) -> None:
    assert final_files(root) == []
    assert tmp_files(root) == []


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


# --- digests -------------------------------------------------------------------------------


def test_parse_digest_returns_hex() -> None:
    hex_ = hashlib.sha256(b"x").hexdigest()
    assert parse_digest(f"sha256:{hex_}") == hex_


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha256:",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha512:" + "a" * 64,
        "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
        "sha256:../../" + "a" * 58,
    ],
)
def test_parse_digest_rejects(bad: str) -> None:
    with pytest.raises(InvalidDigest):
        parse_digest(bad)
    assert issubclass(InvalidDigest, ValueError)


def test_sha256_digest() -> None:
    assert sha256_digest(b"hello") == "sha256:" + hashlib.sha256(b"hello").hexdigest()


async def test_api_validates_digests(store: FilesystemBlobStore) -> None:
    with pytest.raises(InvalidDigest):
        await store.exists("sha256:nope")
    with pytest.raises(InvalidDigest):
        await store.put(b"x", expected="md5:abc")
    assert_nothing_stored(store.root)


# --- basic operations ----------------------------------------------------------------------


async def test_put_read_round_trip_and_layout(store: FilesystemBlobStore) -> None:
    data = payload(3000)
    digest = await store.put(data)
    assert digest == sha256_digest(data)
    assert await store.read_bytes(digest) == data
    hex_ = parse_digest(digest)
    assert final_files(store.root) == [store.root / "sha256" / hex_[:2] / hex_]
    assert tmp_files(store.root) == []


async def test_exists_size_delete(store: FilesystemBlobStore) -> None:
    digest = await store.put(b"abc")
    assert await store.exists(digest)
    assert await store.size(digest) == 3
    assert await store.delete(digest) is True
    assert not await store.exists(digest)
    assert await store.delete(digest) is False
    with pytest.raises(BlobNotFound):
        await store.size(digest)
    with pytest.raises(BlobNotFound):
        await store.read_bytes(digest)


async def test_empty_blob(store: FilesystemBlobStore) -> None:
    digest = await store.put(b"")
    assert digest == sha256_digest(b"")
    assert await store.size(digest) == 0
    assert [c async for c in store.open(digest)] == []


async def test_put_existing_blob_keeps_one_file(store: FilesystemBlobStore) -> None:
    d1 = await store.put(b"same")
    d2 = await store.put(b"same")
    assert d1 == d2
    assert len(final_files(store.root)) == 1
    assert tmp_files(store.root) == []


async def test_local_path(store: FilesystemBlobStore) -> None:
    digest = await store.put(b"served")
    path = store.local_path(digest)
    assert path is not None
    assert path.read_bytes() == b"served"
    # Missing blobs give None (the method stats the file), never a dangling path.
    assert store.local_path(sha256_digest(b"missing")) is None


async def test_check(store: FilesystemBlobStore, tmp_path: Path) -> None:
    await store.check()
    assert tmp_files(store.root) == []
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    with pytest.raises(BlobError):
        await FilesystemBlobStore(not_a_dir).check()


# --- streaming writes and verification ------------------------------------------------------


async def test_streaming_write_many_chunks(store: FilesystemBlobStore) -> None:
    data = payload(5 * MIB + 12345)
    rng = random.Random(1)
    async with store.writer() as w:
        off = 0
        while off < len(data):
            n = rng.randint(1, 300_000)
            await w.write(data[off : off + n])
            off += n
            assert w.size == min(off, len(data))
        digest = await w.commit()
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert await store.read_bytes(digest) == data
    assert tmp_files(store.root) == []


async def test_put_async_iterable(store: FilesystemBlobStore) -> None:
    data = payload(3 * MIB)

    async def chunks() -> AsyncIterator[bytes]:
        for off in range(0, len(data), 100_000):
            yield data[off : off + 100_000]

    assert await store.put(chunks()) == sha256_digest(data)


async def test_mutable_buffer_is_copied(store: FilesystemBlobStore) -> None:
    buf = bytearray(b"aaaa")
    async with store.writer() as w:
        await w.write(buf)  # type: ignore[arg-type]  # callers may pass any buffer
        buf[:] = b"bbbb"
        digest = await w.commit()
    assert await store.read_bytes(digest) == b"aaaa"


async def test_expected_digest_match(store: FilesystemBlobStore) -> None:
    data = payload(2 * MIB)
    async with store.writer() as w:
        await w.write(data)
        assert await w.commit(sha256_digest(data)) == sha256_digest(data)
    assert await store.put(b"x", expected=sha256_digest(b"x")) == sha256_digest(b"x")


async def test_digest_mismatch_stores_nothing(store: FilesystemBlobStore) -> None:
    data = payload(2 * MIB + 1)
    wrong = sha256_digest(b"something else")
    with pytest.raises(DigestMismatch) as info:
        async with store.writer() as w:
            await w.write(data)
            await w.commit(wrong)
    assert info.value.expected == wrong
    assert info.value.actual == sha256_digest(data)
    with pytest.raises(DigestMismatch):
        await store.put(b"small", expected=wrong)
    assert not await store.exists(sha256_digest(data))
    assert_nothing_stored(store.root)


async def test_max_size(store: FilesystemBlobStore) -> None:
    assert await store.put(b"12345", max_size=5) == sha256_digest(b"12345")
    await store.delete(sha256_digest(b"12345"))
    with pytest.raises(BlobTooLarge):
        await store.put(b"123456", max_size=5)
    with pytest.raises(BlobTooLarge):
        async with store.writer(max_size=3 * MIB) as w:
            for _ in range(4):
                await w.write(payload(MIB))
            await w.commit()
    assert_nothing_stored(store.root)


async def test_writer_unusable_after_commit_or_abort(store: FilesystemBlobStore) -> None:
    async with store.writer() as w:
        await w.write(b"x")
        await w.commit()
        with pytest.raises(BlobError):
            await w.write(b"y")
    async with store.writer() as w2:
        await w2.write(b"z")
        await w2.abort()
        await w2.abort()  # idempotent
        with pytest.raises(BlobError):
            await w2.commit()
    assert final_files(store.root) == [store.local_path(sha256_digest(b"x"))]
    assert tmp_files(store.root) == []


# --- ranged reads ----------------------------------------------------------------------------

SIZE = 10_000


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 10), (0, 1), (4000, 6001), (SIZE - 10, None), (0, None), (0, SIZE), (SIZE, None)],
)
@pytest.mark.parametrize("chunk_size", [1000, 1 << 20])
async def test_ranged_reads(
    store: FilesystemBlobStore, start: int, end: int | None, chunk_size: int
) -> None:
    data = payload(SIZE)
    digest = await store.put(data)
    chunks = [c async for c in store.open(digest, start, end, chunk_size=chunk_size)]
    assert b"".join(chunks) == data[start:end]
    assert all(0 < len(c) <= chunk_size for c in chunks)


@pytest.mark.parametrize(
    ("start", "end"), [(-1, None), (0, SIZE + 1), (10, 5), (SIZE + 1, None), (0, -1)]
)
async def test_invalid_ranges(store: FilesystemBlobStore, start: int, end: int | None) -> None:
    digest = await store.put(payload(SIZE))
    with pytest.raises(InvalidRange):
        async for _ in store.open(digest, start, end):
            pass


async def test_open_missing_blob(store: FilesystemBlobStore) -> None:
    with pytest.raises(BlobNotFound):
        async for _ in store.open(sha256_digest(b"absent")):
            pass


async def test_open_keeps_reading_after_delete(store: FilesystemBlobStore) -> None:
    data = payload(3 * MIB)
    digest = await store.put(data)
    it = store.open(digest, chunk_size=MIB)
    first = await anext(it)
    await store.delete(digest)
    rest = [c async for c in it]
    assert first + b"".join(rest) == data


# --- concurrency -----------------------------------------------------------------------------


async def test_concurrent_writers_same_content_asyncio(store: FilesystemBlobStore) -> None:
    data = payload(3 * MIB)
    async with store.writer() as w1, store.writer() as w2:
        for off in range(0, len(data), 256 * 1024):
            await asyncio.gather(
                w1.write(data[off : off + 256 * 1024]), w2.write(data[off : off + 256 * 1024])
            )
        assert len(tmp_files(store.root)) == 2  # both uploads really in flight
        d1, d2 = await asyncio.gather(w1.commit(), w2.commit())
    assert d1 == d2 == sha256_digest(data)
    assert len(final_files(store.root)) == 1
    assert await store.read_bytes(d1) == data
    assert tmp_files(store.root) == []


def test_concurrent_writers_same_content_threads(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    data = payload(4 * MIB)
    barrier = threading.Barrier(2)
    results: list[str] = []

    async def upload() -> str:
        # Separate store instances, as separate app workers would have.
        async with FilesystemBlobStore(root).writer() as w:
            for off in range(0, len(data), MIB):
                await w.write(data[off : off + MIB])
            barrier.wait()  # commit at the same moment
            return await w.commit()

    threads = [
        threading.Thread(target=lambda: results.append(asyncio.run(upload()))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [sha256_digest(data)] * 2
    assert len(final_files(root)) == 1
    assert final_files(root)[0].read_bytes() == data
    assert tmp_files(root) == []


def _child(root: Path, size: int, seed: int, mode: str) -> subprocess.Popen[str]:
    # The child must import this checkout's graft whether or not it is pip-installed.
    src = str(Path(graft.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(root), str(size), str(seed), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_concurrent_writers_same_content_processes(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    size = 4 * MIB
    children = [_child(root, size, 7, "full") for _ in range(2)]
    try:
        for c in children:
            assert c.stdout is not None
            assert c.stdout.readline().strip() == "READY"
        assert len(tmp_files(root)) == 2
        outputs = [c.communicate("go\n", timeout=30)[0] for c in children]
    finally:
        for c in children:
            c.kill()
    assert [c.returncode for c in children] == [0, 0]
    expected = sha256_digest(payload(size, 7))
    assert [o.strip() for o in outputs] == [expected, expected]
    assert len(final_files(root)) == 1
    assert final_files(root)[0].read_bytes() == payload(size, 7)
    assert tmp_files(root) == []


# --- interrupted writes ----------------------------------------------------------------------


async def test_exception_inside_writer_block(store: FilesystemBlobStore) -> None:
    data = payload(3 * MIB)
    with pytest.raises(RuntimeError, match="boom"):
        async with store.writer() as w:
            await w.write(data)
            assert len(tmp_files(store.root)) == 1
            raise RuntimeError("boom")
    assert not await store.exists(sha256_digest(data))
    assert_nothing_stored(store.root)


async def test_task_cancelled_mid_write(store: FilesystemBlobStore) -> None:
    data = payload(4 * MIB)
    halfway = asyncio.Event()

    async def upload() -> None:
        async with store.writer() as w:
            for off in range(0, len(data), 512 * 1024):
                await w.write(data[off : off + 512 * 1024])
                if off >= 2 * MIB:
                    halfway.set()
                    await asyncio.sleep(3600)  # the network waiting for the next chunk
            await w.commit()

    task = asyncio.create_task(upload())
    await halfway.wait()
    assert tmp_files(store.root)[0].stat().st_size >= 2 * MIB
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await store.exists(sha256_digest(data))
    assert_nothing_stored(store.root)


async def test_anyio_cancel_scope_mid_write(store: FilesystemBlobStore) -> None:
    # anyio cancellation is level-triggered: cleanup must not depend on awaiting anything.
    data = payload(2 * MIB)
    async with anyio.create_task_group() as tg:

        async def upload() -> None:
            async with store.writer() as w:
                await w.write(data)
                tg.cancel_scope.cancel()
                await anyio.sleep(3600)
                await w.commit()

        tg.start_soon(upload)
    assert_nothing_stored(store.root)


async def test_cancelled_while_worker_thread_writes(
    store: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain asyncio cancellation abandons a running to_thread call; the thread must not write
    # into a closed (possibly reused) descriptor or resurrect the temp file afterwards.
    in_thread, release, thread_done = threading.Event(), threading.Event(), threading.Event()
    original = FilesystemBlobWriter._write_batch

    def slow_write_batch(self: FilesystemBlobWriter, batch: list[bytes]) -> None:
        in_thread.set()
        release.wait(10)
        try:
            original(self, batch)
        finally:
            thread_done.set()

    monkeypatch.setattr(FilesystemBlobWriter, "_write_batch", slow_write_batch)

    async def upload() -> None:
        async with store.writer() as w:
            await w.write(payload(2 * MIB))
            await w.commit()

    task = asyncio.create_task(upload())
    await anyio.to_thread.run_sync(in_thread.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_nothing_stored(store.root)
    release.set()
    await anyio.to_thread.run_sync(thread_done.wait, 10)
    assert_nothing_stored(store.root)


def test_killed_process_leaves_no_visible_blob(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    size = 8 * MIB
    child = _child(root, size, 3, "kill")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "HALF"
        (leftover,) = tmp_files(root)
        assert leftover.stat().st_size >= 3 * MIB  # really half written, on disk
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    store = FilesystemBlobStore(root)
    digest = sha256_digest(payload(size, 3))
    assert not asyncio.run(store.exists(digest))
    assert store.local_path(digest) is None
    assert final_files(root) == []
    assert tmp_files(root) == [leftover]
    assert asyncio.run(store.cleanup_stale_uploads(3600)) == 0  # too recent
    assert asyncio.run(store.cleanup_stale_uploads(0)) == 1
    assert_nothing_stored(root)


async def test_cleanup_spares_live_uploads(store: FilesystemBlobStore) -> None:
    async with store.writer() as w:
        await w.write(payload(2 * MIB))
        (tmp,) = tmp_files(store.root)
        old = time.time() - 7200
        os.utime(tmp, (old, old))
        assert await store.cleanup_stale_uploads(0) == 0  # this process is still writing it
        other = FilesystemBlobStore(store.root)  # e.g. another worker: only age protects it
        assert await other.cleanup_stale_uploads(3600) == 1
        with pytest.raises(BlobError):
            await w.commit()
    assert_nothing_stored(store.root)
    assert await store.cleanup_stale_uploads(0) == 0  # no tmp dir contents at all


# --- sha512 (OCI allows it) --------------------------------------------------------------


def test_parse_digest_accepts_sha512() -> None:
    hex_ = hashlib.sha512(b"x").hexdigest()
    assert parse_digest(f"sha512:{hex_}") == hex_
    assert split_digest(f"sha512:{hex_}") == ("sha512", hex_)
    assert digest_of(b"x", "sha512") == f"sha512:{hex_}"
    with pytest.raises(InvalidDigest):
        parse_digest("sha512:" + hex_.upper())
    with pytest.raises(InvalidDigest):
        parse_digest("sha384:" + "a" * 96)


async def test_sha512_blob_is_verified_and_stored(store: FilesystemBlobStore) -> None:
    data = b"layer bytes" * 1000
    d512 = digest_of(data, "sha512")
    assert await store.put(data, expected=d512) == d512
    assert await store.exists(d512)
    assert await store.read_bytes(d512) == data
    path = store.local_path(d512)
    assert path is not None and path.parent.parent.name == "sha512"
    # the same bytes under sha256 are a separate name, not stored by the sha512 write
    assert not await store.exists(sha256_digest(data))
    wrong = digest_of(b"other", "sha512")
    with pytest.raises(DigestMismatch) as info:
        await store.put(data, expected=wrong)
    assert info.value.actual == d512
    assert not await store.exists(wrong)
    assert tmp_files(store.root) == []


async def test_import_file_verifies_then_moves(store: FilesystemBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "upload"
    src.write_bytes(b"abc" * 100)
    with pytest.raises(DigestMismatch):
        await store.import_file(src, sha256_digest(b"nope"))
    assert src.exists() and not await store.exists(sha256_digest(b"nope"))
    digest = await store.import_file(src, sha256_digest(b"abc" * 100))
    assert not src.exists()
    assert await store.read_bytes(digest) == b"abc" * 100
    again = tmp_path / "again"
    again.write_bytes(b"abc" * 100)
    d512 = digest_of(b"abc" * 100, "sha512")
    assert await store.import_file(again, d512) == d512
    assert await store.read_bytes(d512) == b"abc" * 100


async def test_scratch_objects(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    scratch = store.scratch("oci-uploads")

    async def body(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async def broken() -> AsyncIterator[bytes]:
        yield b"half"
        raise ConnectionResetError

    assert await scratch.write("u1/0-a", body(b"abc", b"", b"def")) == 6
    assert (tmp_path / "blobs" / "oci-uploads" / "u1" / "0-a").read_bytes() == b"abcdef"
    assert scratch.local_path("u1/0-a") == tmp_path / "blobs" / "oci-uploads" / "u1" / "0-a"
    assert b"".join([c async for c in scratch.read("u1/0-a", chunk_size=4)]) == b"abcdef"
    with pytest.raises(BlobTooLarge):
        await scratch.write("u1/6-b", body(b"x" * 10), max_size=5)
    with pytest.raises(ConnectionResetError):
        await scratch.write("u1/6-c", broken())
    assert sorted(os.listdir(tmp_path / "blobs" / "oci-uploads" / "u1")) == ["0-a"]
    with pytest.raises(BlobNotFound):
        [c async for c in scratch.read("u1/6-b")]
    for bad in ("../sha256/aa", "/abs", "u1/../x", "", "u1//x"):
        with pytest.raises(ValueError):
            await scratch.write(bad, body(b"x"))
    old = time.time() - 7200
    os.utime(tmp_path / "blobs" / "oci-uploads" / "u1" / "0-a", (old, old))
    await scratch.write("u2/0-a", body(b"new"))
    assert await scratch.stale(3600) == ["u1/0-a"]
    await scratch.delete("u2/0-a")
    await scratch.delete("u2/0-a")  # already gone: fine
    assert await scratch.delete_tree("u1") == 1
    assert not (tmp_path / "blobs" / "oci-uploads" / "u1").exists()
    assert await scratch.delete_tree("u1") == 0
