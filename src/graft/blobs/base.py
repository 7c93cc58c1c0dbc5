"""Blob store protocol and shared types.

Blobs are immutable and content-addressed: the key of a blob is the sha256 of its bytes,
written as ``"sha256:<64 lowercase hex>"`` everywhere in the API. A blob may also be addressed
by ``"sha512:<128 lowercase hex>"`` (OCI allows both): it is then stored under that name, and
writers verify it when such a digest is the expected one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

ALGORITHM = "sha256"  # the default, and what a write without an expected digest yields
#: every algorithm a digest may use, with its hex length
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"(sha256):([0-9a-f]{64})|(sha512):([0-9a-f]{128})")


class BlobError(Exception):
    """Base class for blob store errors."""


class InvalidDigest(BlobError, ValueError):
    """A digest string is not ``sha256:<64 lowercase hex>`` (or ``sha512:<128 lowercase hex>``)."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"invalid digest: {digest!r}")
        self.digest = digest


class BlobNotFound(BlobError):
    def __init__(self, digest: str) -> None:
        super().__init__(f"blob not found: {digest}")
        self.digest = digest


class DigestMismatch(BlobError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class BlobTooLarge(BlobError):
    def __init__(self, max_size: int) -> None:
        super().__init__(f"blob exceeds the maximum size of {max_size} bytes")
        self.max_size = max_size


class InvalidRange(BlobError):
    def __init__(self, start: int, end: int | None, size: int) -> None:
        super().__init__(f"invalid range [{start}, {end}) for a blob of {size} bytes")
        self.start = start
        self.end = end
        self.size = size


def split_digest(digest: str) -> tuple[str, str]:
    """Validate ``<algorithm>:<hex>`` and return ``(algorithm, hex)`` (raises InvalidDigest).

    Uppercase hex is rejected rather than normalised: one blob must have exactly one name.
    """
    m = _DIGEST_RE.fullmatch(digest) if isinstance(digest, str) else None
    if m is None:
        raise InvalidDigest(digest)
    if m.group(1):
        return m.group(1), m.group(2)
    return m.group(3), m.group(4)


def parse_digest(digest: str) -> str:
    """Validate a digest and return its hex part (raises InvalidDigest)."""
    return split_digest(digest)[1]


def sha256_digest(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def digest_of(data: bytes, algorithm: str = ALGORITHM) -> str:
    """``<algorithm>:<hex>`` of ``data``; algorithm is one of ALGORITHMS."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_range(start: int, end: int | None, size: int) -> int:
    """Validate ``[start, end)`` against a blob of ``size`` bytes; return the concrete end.

    Empty ranges (start == end, including start == size) are allowed.
    """
    stop = size if end is None else end
    if start < 0 or stop < start or stop > size:
        raise InvalidRange(start, end, size)
    return stop


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A stored blob as a local file (read-only)."""

    path: str
    size: int


class BlobWriter(Protocol):
    """An in-progress upload. Obtained from ``BlobStore.writer()``; not reusable."""

    @property
    def size(self) -> int:
        """Bytes accepted so far."""
        ...

    async def write(self, chunk: bytes) -> None:
        """Append data; raises BlobTooLarge (and discards the upload) past max_size."""
        ...

    async def commit(self, expected: str | None = None) -> str:
        """Verify against ``expected`` (DigestMismatch), publish atomically, return the digest.

        Committing content that is already stored succeeds and returns the same digest.
        """
        ...

    async def abort(self) -> None:
        """Discard the upload. Idempotent; leaving the context uncommitted does the same."""
        ...


async def put_through(
    writer: AbstractAsyncContextManager[BlobWriter],
    data: bytes | AsyncIterable[bytes],
    expected: str | None,
) -> str:
    """`BlobStore.put` for any store: stream `data` into its writer, commit against `expected`."""
    if expected is not None:
        parse_digest(expected)  # fail before doing any I/O
    async with writer as w:
        if isinstance(data, bytes | bytearray | memoryview):
            await w.write(bytes(data))
        else:
            async for chunk in data:
                await w.write(chunk)
        return await w.commit(expected)


class Scratch(Protocol):
    """Named temporary objects next to the blobs (the same volume or bucket), so every process
    sharing the store sees them: data received in pieces before it becomes one blob (an OCI
    chunked upload). Nothing here is verified or content-addressed; callers stream it into
    `BlobStore.writer()` to publish it. Names are `/`-separated `[A-Za-z0-9._-]` segments."""

    async def write(
        self, name: str, data: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> int:
        """Store `data` under `name` (replacing it); return its size. Raises BlobTooLarge past
        `max_size`; on any error nothing is left under `name` (a killed process may leave
        debris, which `stale` reports)."""
        ...

    def read(self, name: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream the object; BlobNotFound on the first iteration if it is absent."""
        ...

    async def delete(self, name: str) -> None:
        """Remove the object if it is there."""
        ...

    async def delete_tree(self, prefix: str) -> int:
        """Remove every object named `<prefix>/…`; return how many."""
        ...

    async def stale(self, older_than_seconds: float) -> list[str]:
        """Names of the objects not written for `older_than_seconds`."""
        ...

    def local_path(self, name: str) -> Path | None:
        """The object as a local file (it may be moved away with `BlobStore.import_file`), or
        None for a backend without local files."""
        ...


_SCRATCH_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


def check_scratch_name(name: str) -> str:
    """Refuse names that could leave the scratch area (`..`, absolute paths, odd bytes)."""
    if not _SCRATCH_NAME.fullmatch(name):
        raise ValueError(f"invalid scratch name {name!r}")
    return name


class BlobStore(Protocol):
    def scratch(self, area: str) -> Scratch:
        """The scratch objects of `area` (e.g. "oci-uploads"), shared like the blobs."""
        ...

    def writer(self, *, max_size: int | None = None) -> AbstractAsyncContextManager[BlobWriter]:
        """Streaming upload. Leaving the block without ``commit()`` (exception,
        cancellation) discards the data; nothing becomes visible."""
        ...

    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        expected: str | None = None,
        *,
        max_size: int | None = None,
    ) -> str:
        """Store ``data`` in one call; same guarantees as ``writer()``."""
        ...

    async def import_file(self, path: Path, expected: str) -> str:
        """Publish the local file ``path`` as the blob ``expected`` after hashing it
        (DigestMismatch leaves ``path`` in place). The file is moved when it lives on the
        store's filesystem, else copied; on success ``path`` no longer exists."""
        ...

    async def exists(self, digest: str) -> bool: ...

    async def size(self, digest: str) -> int:
        """Size in bytes; raises BlobNotFound."""
        ...

    async def delete(self, digest: str) -> bool:
        """Remove the blob; False if it was not there."""
        ...

    def open(
        self, digest: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` (``end=None``: to the end of the blob).

        BlobNotFound / InvalidRange are raised on the first iteration, so check ``size()``
        first when a response status depends on it.
        """
        ...

    async def read_bytes(self, digest: str) -> bytes:
        """Whole blob in memory; only for small blobs (metadata, manifests)."""
        ...

    def local_path(self, digest: str) -> Path | None:
        """Path of the stored file for zero-copy serving, or None (blob absent, or a backend
        without local files). The file must be treated as read-only."""
        ...

    def local_file(self, digest: str) -> LocalFile | None:
        """`local_path` for the download path: one stat, no Path objects, with the size."""
        ...

    async def direct_url(
        self, digest: str, size: int, media_type: str, *, scheme: str, host: str
    ) -> str | None:
        """A short-lived URL the client may fetch this blob from without a Graft token (the
        zero-copy blob server, or an object store's presigned URL), or None: serve it here."""
        ...

    async def check(self) -> None:
        """Raise BlobError if the store cannot currently be read and written (readiness)."""
        ...

    async def close(self) -> None:
        """Release connections (object store clients); the store may be used again after."""
        ...

    async def cleanup_stale_uploads(self, older_than_seconds: float) -> int:
        """Remove temporary upload data untouched for ``older_than_seconds`` (left by killed
        processes); return how many were removed. Use an age well above the slowest upload's
        idle gap, since other processes sharing the store may still be writing."""
        ...
