"""Filesystem blob store.

Layout under ``root``::

    sha256/<first 2 hex>/<64 hex>   published blobs (immutable)
    sha512/<first 2 hex>/<128 hex>  blobs addressed by sha512 (OCI allows it)
    tmp/<random>.part               uploads in progress (same filesystem: rename is atomic)
    <area>/<name>                   scratch objects (``scratch(area)``, e.g. OCI upload chunks)

A blob only ever appears at its final path through ``os.replace`` of a complete, fsynced,
verified temp file, so readers never see partial data, and a process killed mid-upload
leaves debris only under ``tmp/`` (see ``cleanup_stale_uploads``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

import anyio
import anyio.to_thread

from .base import (
    ALGORITHM,
    BlobError,
    BlobNotFound,
    BlobTooLarge,
    DigestMismatch,
    LocalFile,
    check_range,
    check_scratch_name,
    put_through,
    split_digest,
)

if TYPE_CHECKING:
    from .base import BlobStore
    from .urls import BlobUrlSigner

# Data is handed to a worker thread in batches of about this size: big enough to amortise the
# thread hop, small enough that an abort never waits long for an in-flight write.
_FLUSH_SIZE = 1 << 20
_TMP_SUFFIX = ".part"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _fsync_dir(path: Path) -> None:
    # Makes a rename/create in ``path`` durable; not supported on every platform/filesystem.
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _makedirs_durable(path: Path) -> None:
    if path.is_dir():
        return
    _makedirs_durable(path.parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    _fsync_dir(path.parent)


def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_FLUSH_SIZE):
            h.update(chunk)
    return h.hexdigest()


class FilesystemBlobWriter:
    """One upload into ``root/tmp``. Use through ``FilesystemBlobStore.writer()``.

    File operations run in worker threads. Plain asyncio cancellation abandons a running
    worker thread (it keeps going), so every touch of the file descriptor happens under
    ``_lock`` and re-checks that the upload is still open; this lets ``_discard`` run
    synchronously and safely from any state, including a cancelled task.
    """

    def __init__(self, store: FilesystemBlobStore, max_size: int | None) -> None:
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must be >= 0")
        self._store = store
        self._max_size = max_size
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._tmp: Path | None = None
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._size = 0
        self._state: Literal["new", "open", "committed", "aborted"] = "new"
        # True while a flush is in a worker thread; if the awaiting task was cancelled the
        # thread may still be hashing, so the writer must not be used any further.
        self._busy = False

    @property
    def size(self) -> int:
        return self._size

    async def __aenter__(self) -> Self:
        try:
            await anyio.to_thread.run_sync(self._open_temp)
        except BaseException:
            # Cancelled while the thread may still be creating the file: _open_temp sees the
            # "aborted" state under the lock and creates nothing, or _discard removes it.
            self._discard()
            raise
        self._state = "open"
        return self

    def _open_temp(self) -> None:
        with self._lock:
            if self._state == "new":
                self._fd, self._tmp = self._store._create_temp()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Synchronous on purpose: under (anyio) cancellation any await here would raise again
        # before the temp file is gone.
        if self._state != "committed":
            self._discard()

    def _require_open(self) -> None:
        if self._state != "open":
            raise BlobError(f"blob writer is {self._state}")
        if self._busy:
            raise BlobError("a previous write of this blob writer failed or was interrupted")

    async def write(self, chunk: bytes) -> None:
        self._require_open()
        if not chunk:
            return
        if self._max_size is not None and self._size + len(chunk) > self._max_size:
            self._discard()
            raise BlobTooLarge(self._max_size)
        # bytes(x) is a no-op for bytes and copies mutable buffers the caller may reuse.
        self._pending.append(bytes(chunk))
        self._pending_size += len(chunk)
        self._size += len(chunk)
        if self._pending_size >= _FLUSH_SIZE:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_size = self._pending, [], 0
        self._busy = True
        await anyio.to_thread.run_sync(self._write_batch, batch)
        self._busy = False

    def _write_batch(self, batch: list[bytes]) -> None:
        for chunk in batch:
            # Hash and write in slices so a concurrent _discard waits for one slice at most.
            view = memoryview(chunk)
            for offset in range(0, len(view), _FLUSH_SIZE):
                part = view[offset : offset + _FLUSH_SIZE]
                with self._lock:
                    if self._fd is None:
                        raise BlobError("blob writer was discarded")
                    self._hash.update(part)  # releases the GIL for large buffers
                    while part:
                        part = part[os.write(self._fd, part) :]

    async def commit(self, expected: str | None = None) -> str:
        algorithm = split_digest(expected)[0] if expected is not None else ALGORITHM
        self._require_open()
        await self._flush()
        if algorithm == ALGORITHM:
            digest = f"{ALGORITHM}:{self._hash.hexdigest()}"
        else:  # rare (sha512 OCI blobs): hash the written file once more
            digest = await anyio.to_thread.run_sync(self._rehash, algorithm)
        if expected is not None and digest != expected:
            self._discard()
            raise DigestMismatch(expected, digest)
        await anyio.to_thread.run_sync(self._publish, self._store._path(digest))
        self._state = "committed"
        return digest

    def _rehash(self, algorithm: str) -> str:
        with self._lock:
            if self._tmp is None:
                raise BlobError("blob writer was discarded")
            return f"{algorithm}:{_hash_file(self._tmp, algorithm)}"

    def _publish(self, final: Path) -> None:
        with self._lock:
            fd, tmp = self._fd, self._tmp
            if fd is None or tmp is None:
                raise BlobError("blob writer was discarded")
            self._fd = self._tmp = None  # from here on this function owns the temp file
            try:
                already_stored = final.exists()
                try:
                    if not already_stored:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                if already_stored:
                    # Same digest means same bytes: keep the stored file untouched.
                    tmp.unlink(missing_ok=True)
                    return
                _makedirs_durable(final.parent)
                try:
                    # Atomic; a racing writer of the same digest only replaces identical bytes.
                    os.replace(tmp, final)
                except FileNotFoundError as e:
                    if final.parent.is_dir():
                        # e.g. swept by another process's cleanup_stale_uploads after idling
                        raise BlobError("temporary upload file disappeared") from e
                    raise
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            finally:
                self._store._active.discard(tmp.name)
        _fsync_dir(final.parent)

    async def abort(self) -> None:
        if self._state != "committed":
            self._discard()

    def _discard(self) -> None:
        # Close + unlink are cheap metadata operations; taking the lock waits at most for
        # one in-flight slice of an abandoned worker thread.
        self._state = "aborted"
        self._pending, self._pending_size = [], 0
        with self._lock:
            fd, tmp = self._fd, self._tmp
            self._fd = self._tmp = None
        try:
            if fd is not None:
                os.close(fd)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
                self._store._active.discard(tmp.name)


class FilesystemScratch:
    """Scratch objects as files under `root` (see `Scratch`). A file is written in place: a
    name is only ever written by one writer (callers make names unique), and a reader only
    reads names a finished write reported."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / check_scratch_name(name)

    async def write(
        self, name: str, data: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> int:
        path = self._path(name)

        def create() -> int:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644)

        fd = await anyio.to_thread.run_sync(create)
        lock = threading.Lock()  # as in the writer: an abandoned thread never writes after close
        closed = False

        def flush(batch: list[bytes]) -> None:
            for chunk in batch:
                view = memoryview(chunk)
                with lock:
                    if closed:
                        raise BlobError("scratch write was abandoned")
                    while view:
                        view = view[os.write(fd, view) :]

        size = 0
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in data:
                if not chunk:
                    continue
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise BlobTooLarge(max_size)
                pending.append(bytes(chunk))
                pending_size += len(chunk)
                if pending_size >= _FLUSH_SIZE:
                    batch, pending, pending_size = pending, [], 0
                    await anyio.to_thread.run_sync(flush, batch)
            if pending:
                await anyio.to_thread.run_sync(flush, pending)
        except BaseException:
            with lock:
                closed = True
                os.close(fd)
            path.unlink(missing_ok=True)
            raise
        with lock:
            closed = True
            os.close(fd)
        return size

    async def read(self, name: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        path = self._path(name)
        try:
            fh = await anyio.to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFound(name) from None
        try:
            while data := await anyio.to_thread.run_sync(fh.read, chunk_size):
                yield data
        finally:
            fh.close()

    async def delete(self, name: str) -> None:
        path = self._path(name)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def delete_tree(self, prefix: str) -> int:
        top = self._path(prefix)

        def remove() -> int:
            try:
                entries = list(os.scandir(top))
            except (FileNotFoundError, NotADirectoryError):
                return 0
            removed = 0
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
            with contextlib.suppress(OSError):
                os.rmdir(top)  # unless a racing write just created something in it
            return removed

        return await anyio.to_thread.run_sync(remove)

    async def stale(self, older_than_seconds: float) -> list[str]:
        def walk() -> list[str]:
            cutoff = time.time() - older_than_seconds
            found = []
            for dirpath, _dirs, files in os.walk(self.root):
                for file in files:
                    path = os.path.join(dirpath, file)
                    with contextlib.suppress(FileNotFoundError):
                        if os.stat(path).st_mtime <= cutoff:
                            found.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
            return found

        return await anyio.to_thread.run_sync(walk)

    def local_path(self, name: str) -> Path | None:
        return self._path(name)


class FilesystemBlobStore:
    def __init__(
        self,
        root: Path | str,
        *,
        url_signer: BlobUrlSigner | None = None,
        redirect_min_bytes: int = 4 << 20,
    ) -> None:
        # Nothing is created here so that an unavailable volume surfaces through check()
        # (readiness) instead of crashing startup.
        self.root = Path(root)
        self._blobs = self.root / ALGORITHM  # the sha512 tree sits next to it
        self._root_dir = str(self.root)
        # Large downloads go by the zero-copy blob server when one runs (graft.blobserver).
        self._url_signer = url_signer
        self._redirect_min_bytes = redirect_min_bytes
        self._tmpdir = self.root / "tmp"
        # Temp files of this process's live uploads, which cleanup never removes.
        self._active: set[str] = set()

    def _path(self, digest: str) -> Path:
        algorithm, hex_ = split_digest(digest)
        return self.root / algorithm / hex_[:2] / hex_

    def _create_temp(self) -> tuple[int, Path]:
        # Random name + O_EXCL: never shared with another writer, in any process.
        tmp = self._tmpdir / f"{secrets.token_hex(16)}{_TMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            _makedirs_durable(self._tmpdir)
            fd = os.open(tmp, flags, 0o644)
        self._active.add(tmp.name)
        return fd, tmp

    def scratch(self, area: str) -> FilesystemScratch:
        return FilesystemScratch(self.root / check_scratch_name(area))

    def writer(self, *, max_size: int | None = None) -> FilesystemBlobWriter:
        return FilesystemBlobWriter(self, max_size)

    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        expected: str | None = None,
        *,
        max_size: int | None = None,
    ) -> str:
        return await put_through(self.writer(max_size=max_size), data, expected)

    async def import_file(self, path: Path, expected: str) -> str:
        algorithm = split_digest(expected)[0]
        final = self._path(expected)

        def ingest() -> str:
            actual = f"{algorithm}:{_hash_file(path, algorithm)}"
            if actual != expected:
                raise DigestMismatch(expected, actual)
            if final.exists():
                path.unlink(missing_ok=True)
                return expected
            _makedirs_durable(final.parent)
            with path.open("rb") as f:
                os.fsync(f.fileno())
            try:
                os.replace(path, final)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                # Another filesystem: copy through a temp file of ours, then rename.
                fd, tmp = self._create_temp()
                try:
                    with path.open("rb") as src, os.fdopen(fd, "wb") as dst:
                        shutil.copyfileobj(src, dst, _FLUSH_SIZE)
                        dst.flush()
                        os.fsync(dst.fileno())
                    os.replace(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)
                    self._active.discard(tmp.name)
                path.unlink(missing_ok=True)
            _fsync_dir(final.parent)
            return expected

        return await anyio.to_thread.run_sync(ingest)

    # stat() on a local filesystem is fast enough to call from the event loop.

    async def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    async def size(self, digest: str) -> int:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    async def delete(self, digest: str) -> bool:
        path = self._path(digest)
        try:
            await anyio.to_thread.run_sync(path.unlink)
        except FileNotFoundError:
            return False
        return True

    async def open(
        self, digest: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        path = self._path(digest)
        try:
            fd = await anyio.to_thread.run_sync(os.open, path, os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        # As in the writer: a cancelled read may leave a worker thread running, so reads and
        # the final close are serialised to never pread() a closed (or reused) descriptor.
        lock = threading.Lock()
        closed = False

        def pread(n: int, offset: int) -> bytes:
            with lock:
                if closed:
                    raise BlobError("blob reader closed")
                return os.pread(fd, n, offset)

        try:
            # The open descriptor pins this file even if the blob is deleted meanwhile.
            stop = check_range(start, end, os.fstat(fd).st_size)
            pos = start
            while pos < stop:
                data = await anyio.to_thread.run_sync(pread, min(chunk_size, stop - pos), pos)
                if not data:
                    raise BlobError(f"blob {digest} is shorter than its recorded size")
                pos += len(data)
                yield data
        finally:
            with lock:
                closed = True
                os.close(fd)

    async def read_bytes(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            return await anyio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def local_path(self, digest: str) -> Path | None:
        """Final path if the blob exists, else None (one stat, on the calling thread)."""
        path = self._path(digest)
        return path if path.is_file() else None

    def local_file(self, digest: str) -> LocalFile | None:
        algorithm, hex_ = split_digest(digest)
        path = f"{self._root_dir}/{algorithm}/{hex_[:2]}/{hex_}"
        try:
            st = os.stat(path)  # a local stat takes microseconds: no thread hand-off
        except (FileNotFoundError, NotADirectoryError):
            return None
        return LocalFile(path, st.st_size) if stat.S_ISREG(st.st_mode) else None

    async def direct_url(
        self, digest: str, size: int, media_type: str, *, scheme: str, host: str
    ) -> str | None:
        if self._url_signer is None or size < self._redirect_min_bytes:
            return None
        algorithm, hex_ = split_digest(digest)
        if algorithm != ALGORITHM:  # the blob server serves the sha256 tree (nearly all blobs)
            return None
        return self._url_signer.url(hex_, media_type, scheme=scheme, host=host)

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        def probe() -> None:
            _makedirs_durable(self._blobs)
            fd, tmp = self._create_temp()
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                self._active.discard(tmp.name)

        try:
            await anyio.to_thread.run_sync(probe)
        except OSError as e:
            raise BlobError(f"blob store at {self.root} is not writable: {e}") from e

    async def cleanup_stale_uploads(self, older_than_seconds: float) -> int:
        def sweep() -> int:
            cutoff = time.time() - older_than_seconds
            removed = 0
            try:
                entries = list(os.scandir(self._tmpdir))
            except FileNotFoundError:
                return 0
            for entry in entries:
                if entry.name in self._active or not entry.name.endswith(_TMP_SUFFIX):
                    continue
                # A vanished entry was finished or swept by someone else concurrently.
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime <= cutoff:
                        os.unlink(entry.path)
                        removed += 1
            return removed

        return await anyio.to_thread.run_sync(sweep)


if TYPE_CHECKING:
    # Static proof that the backend satisfies the protocol (checked by mypy only).
    def _conforms(store: FilesystemBlobStore) -> BlobStore:
        return store
