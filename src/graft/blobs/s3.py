"""S3-compatible blob store (AWS S3, MinIO, Ceph RGW, Cloudflare R2, GCS interoperability),
through aiobotocore and only the public S3 API.

Layout under the bucket and an optional key prefix::

    sha256/<first 2 hex>/<64 hex>   published blobs (immutable)
    sha512/<first 2 hex>/<128 hex>  blobs addressed by sha512 (OCI allows it)
    tmp/<random>                    uploads in progress (multipart uploads or finished temps)
    <area>/<name>                   scratch objects (`scratch(area)`, e.g. OCI upload chunks)

A write is hashed as it streams. Up to one part (`part_bytes`) it stays in memory and is put
straight to its content address once verified. Larger writes go as a multipart upload to a
temporary key; only after the digest is checked is the finished temporary object copied to
the content address (server side) and deleted. Readers therefore never see partial or
unverified bytes at a content address; a process killed mid-upload leaves an unfinished
multipart upload or a temporary object under `tmp/`, which `cleanup_stale_uploads` (the
housekeeping task, hourly) aborts or deletes; a bucket lifecycle rule
"AbortIncompleteMultipartUpload" is the belt to those braces (docs/deploy.md).

Overwriting a content address with the same bytes is harmless, so a commit only checks that
the target is absent (HEAD) to skip redundant work; no conditional-write extension is needed.
Transport integrity of each request body is botocore's default checksum.

Downloads may be handed to the object store: `direct_url` presigns a short-lived GET (with
the response content type), when `presign` is on and the blob is at least
`redirect_min_bytes` long — the same decision the filesystem store makes for its blob server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio.to_thread
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from .base import (
    ALGORITHM,
    BlobError,
    BlobNotFound,
    BlobTooLarge,
    DigestMismatch,
    LocalFile,
    check_range,
    check_scratch_name,
    parse_digest,
    put_through,
    split_digest,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, MultipartUploadTypeDef

    from .base import BlobStore

log = logging.getLogger("graft.blobs.s3")

MIN_PART_BYTES = 5 << 20  # S3's smallest part (all but the last)
_COPY_MAX = 5 << 30  # CopyObject's limit; larger objects are copied part by part
_COPY_PART = 1 << 30
_TMP = "tmp/"


def _missing(exc: ClientError) -> bool:
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or err.get("Code") in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class S3BlobWriter:
    """One upload. Use through `S3BlobStore.writer()`."""

    def __init__(self, store: S3BlobStore, max_size: int | None) -> None:
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must be >= 0")
        self._store = store
        self._max_size = max_size
        self._hash = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._size = 0
        # The start time is part of the name: cleanup needs no server clock (some stores
        # report odd `Initiated` times for multipart uploads).
        self._tmp_key = f"{store.prefix}{_TMP}{int(time.time())}-{secrets.token_hex(12)}"
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._state: Literal["open", "committed", "aborted"] = "open"

    @property
    def size(self) -> int:
        return self._size

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "open":
            # No await here: under cancellation it would raise again before the cleanup ran.
            self._store._spawn(self._cleanup())
            self._state = "aborted"
            self._buffer = []

    def _require_open(self) -> None:
        if self._state != "open":
            raise BlobError(f"blob writer is {self._state}")

    async def write(self, chunk: bytes) -> None:
        self._require_open()
        if not chunk:
            return
        if self._max_size is not None and self._size + len(chunk) > self._max_size:
            await self.abort()
            raise BlobTooLarge(self._max_size)
        data = bytes(chunk)  # bytes(x) is a no-op for bytes and copies mutable buffers
        self._hash.update(data)
        self._buffer.append(data)
        self._buffered += len(data)
        self._size += len(data)
        if self._buffered >= self._store.part_bytes:
            await self._send_part()

    async def _send_part(self) -> None:
        body = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        client = await self._store.client()
        if self._upload_id is None:
            created = await client.create_multipart_upload(
                Bucket=self._store.bucket, Key=self._tmp_key
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        sent = await client.upload_part(
            Bucket=self._store.bucket,
            Key=self._tmp_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def commit(self, expected: str | None = None) -> str:
        algorithm = split_digest(expected)[0] if expected is not None else ALGORITHM
        self._require_open()
        store = self._store
        client = await store.client()
        if self._upload_id is None:  # small: verified in memory, put at its address
            body = b"".join(self._buffer)
            digest = (
                f"{ALGORITHM}:{self._hash.hexdigest()}"
                if algorithm == ALGORITHM
                else f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
            )
            if expected is not None and digest != expected:
                await self.abort()
                raise DigestMismatch(expected, digest)
            if not await store.exists(digest):
                await client.put_object(Bucket=store.bucket, Key=store.key(digest), Body=body)
            self._finish(digest)
            return digest
        if self._buffer:
            await self._send_part()
        await client.complete_multipart_upload(
            Bucket=store.bucket,
            Key=self._tmp_key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None  # from here on the temporary object is what is left to delete
        if algorithm == ALGORITHM:
            digest = f"{ALGORITHM}:{self._hash.hexdigest()}"
        else:  # rare (sha512 OCI blobs): hash the stored temporary object once more
            digest = await store._hash_key(self._tmp_key, algorithm)
        if expected is not None and digest != expected:
            await self.abort()
            raise DigestMismatch(expected, digest)
        try:
            if not await store.exists(digest):
                await store._copy(self._tmp_key, store.key(digest), self._size)
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                await client.delete_object(Bucket=store.bucket, Key=self._tmp_key)
        self._finish(digest)
        return digest

    def _finish(self, digest: str) -> None:
        self._state = "committed"
        self._buffer = []
        self._store._remember(digest, self._size)

    async def abort(self) -> None:
        if self._state == "aborted":
            return
        self._state = "aborted"
        self._buffer = []
        await self._cleanup()

    async def _cleanup(self) -> None:
        store = self._store
        try:
            client = await store.client()
            if self._upload_id is not None:
                upload_id, self._upload_id = self._upload_id, None
                await client.abort_multipart_upload(
                    Bucket=store.bucket, Key=self._tmp_key, UploadId=upload_id
                )
            elif self._parts:  # completed into a temporary object
                await client.delete_object(Bucket=store.bucket, Key=self._tmp_key)
        except (ClientError, BotoCoreError) as exc:  # housekeeping retries later
            log.warning("could not remove upload %s: %s", self._tmp_key, exc)


class S3Scratch:
    """Scratch objects under `<prefix><area>/` (see `Scratch`): written like a blob (one
    PUT up to a part, else a multipart upload completed at the end), but straight to their
    name, unhashed. A killed writer leaves an unfinished multipart upload, which
    `cleanup_stale_uploads` aborts."""

    def __init__(self, store: S3BlobStore, area: str) -> None:
        self._store = store
        self.prefix = f"{store.prefix}{check_scratch_name(area)}/"

    def _key(self, name: str) -> str:
        return self.prefix + check_scratch_name(name)

    async def write(
        self, name: str, data: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> int:
        store, key = self._store, self._key(name)
        client = await store.client()
        buffer: list[bytes] = []
        buffered = size = 0
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []

        async def send() -> None:
            nonlocal upload_id, buffer, buffered
            body, buffer, buffered = b"".join(buffer), [], 0
            if upload_id is None:
                created = await client.create_multipart_upload(Bucket=store.bucket, Key=key)
                upload_id = created["UploadId"]
            number = len(parts) + 1
            sent = await client.upload_part(
                Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            parts.append({"PartNumber": number, "ETag": sent["ETag"]})

        try:
            async for chunk in data:
                if not chunk:
                    continue
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise BlobTooLarge(max_size)
                buffer.append(bytes(chunk))
                buffered += len(chunk)
                if buffered >= store.part_bytes:
                    await send()
            if upload_id is None:
                await client.put_object(Bucket=store.bucket, Key=key, Body=b"".join(buffer))
                return size
            if buffer:
                await send()
            await client.complete_multipart_upload(
                Bucket=store.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return size
        except BaseException:
            if upload_id is not None:  # no await: under cancellation it would raise again
                store._spawn(self._abort(key, upload_id))
            raise

    async def _abort(self, key: str, upload_id: str) -> None:
        store = self._store
        try:
            client = await store.client()
            await client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:  # housekeeping retries later
            log.warning("could not abort the scratch upload %s: %s", key, exc)

    async def read(self, name: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        store = self._store
        client = await store.client()
        try:
            response = await client.get_object(Bucket=store.bucket, Key=self._key(name))
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFound(name) from None
            raise BlobError(f"object store: {exc}") from exc
        async with response["Body"] as body:
            while chunk := await body.read(chunk_size):
                yield chunk

    async def delete(self, name: str) -> None:
        client = await self._store.client()
        await client.delete_object(Bucket=self._store.bucket, Key=self._key(name))

    async def _listed(self, prefix: str) -> AsyncIterator[tuple[str, dt.datetime]]:
        client = await self._store.client()
        listing = client.get_paginator("list_objects_v2")
        async for page in listing.paginate(Bucket=self._store.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], obj["LastModified"]

    async def delete_tree(self, prefix: str) -> int:
        store = self._store
        client = await store.client()
        keys = [key async for key, _ in self._listed(self._key(prefix) + "/")]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1000 keys
            batch = keys[start : start + 1000]
            await client.delete_objects(
                Bucket=store.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        return len(keys)

    async def stale(self, older_than_seconds: float) -> list[str]:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds)
        return [
            key[len(self.prefix) :]
            async for key, modified in self._listed(self.prefix)
            if modified <= cutoff
        ]

    def local_path(self, name: str) -> Path | None:
        return None


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
        part_bytes: int = 8 << 20,
        presign: bool = False,
        presign_endpoint_url: str | None = None,
        redirect_min_bytes: int = 4 << 20,
        url_ttl_seconds: int = 300,
        size_cache_seconds: float = 60.0,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.part_bytes = part_bytes
        self.presign = presign
        self.redirect_min_bytes = redirect_min_bytes
        self.url_ttl_seconds = url_ttl_seconds
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": AioConfig(
                s3={"addressing_style": addressing_style},
                signature_version="s3v4",
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=64,
            ),
        }
        self._presign_endpoint = presign_endpoint_url
        self._clients: dict[str, S3Client] = {}
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # digest -> (size, when seen) of blobs seen stored, so that a download costs no HEAD:
        # content never changes, so an entry only goes stale when another replica deletes the
        # blob (garbage collection of unreferenced blobs), for at most `size_cache_seconds`.
        self._sizes: dict[str, tuple[int, float]] = {}
        self.size_cache_seconds = size_cache_seconds
        self._presigned: dict[tuple[str, str], tuple[str, float]] = {}
        self._scratch_areas: set[str] = set()  # key prefixes of the scratch areas in use

    # -- plumbing ---------------------------------------------------------------------------
    async def client(self, kind: str = "io") -> S3Client:
        found = self._clients.get(kind)
        if found is not None:
            return found
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if kind not in self._clients:
                if self._stack is None:
                    self._stack = contextlib.AsyncExitStack()
                args = dict(self._client_args)
                if kind == "presign" and self._presign_endpoint:
                    args["endpoint_url"] = self._presign_endpoint
                session = get_session()
                self._clients[kind] = await self._stack.enter_async_context(
                    session.create_client("s3", **args)
                )
        return self._clients[kind]

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._stack is not None:
            await self._stack.aclose()
        self._stack, self._clients, self._lock = None, {}, None

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def key(self, digest: str) -> str:
        algorithm, hex_ = split_digest(digest)
        return f"{self.prefix}{algorithm}/{hex_[:2]}/{hex_}"

    def _remember(self, digest: str, size: int) -> None:
        if len(self._sizes) >= 200_000:
            self._sizes.clear()
        self._sizes[digest] = (size, time.monotonic())

    def _known_size(self, digest: str) -> int | None:
        hit = self._sizes.get(digest)
        if hit is None or time.monotonic() - hit[1] >= self.size_cache_seconds:
            return None
        return hit[0]

    async def _copy(self, source: str, target: str, size: int) -> None:
        client = await self.client()
        src = {"Bucket": self.bucket, "Key": source}
        if size <= _COPY_MAX:
            await client.copy_object(Bucket=self.bucket, Key=target, CopySource=src)  # type: ignore[arg-type]
            return
        created = await client.create_multipart_upload(Bucket=self.bucket, Key=target)
        upload_id = created["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, _COPY_PART), 1):
                stop = min(size, start + _COPY_PART) - 1
                done = await client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=src,  # type: ignore[arg-type]
                    CopySourceRange=f"bytes={start}-{stop}",
                )
                parts.append({"PartNumber": number, "ETag": done["CopyPartResult"]["ETag"]})
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=target, UploadId=upload_id
                )
            raise

    async def _hash_key(self, key: str, algorithm: str) -> str:
        client = await self.client()
        h = hashlib.new(algorithm)
        response = await client.get_object(Bucket=self.bucket, Key=key)
        async with response["Body"] as body:
            while chunk := await body.read(1 << 20):
                h.update(chunk)
        return f"{algorithm}:{h.hexdigest()}"

    # -- the BlobStore protocol ---------------------------------------------------------------
    def scratch(self, area: str) -> S3Scratch:
        scratch = S3Scratch(self, area)
        self._scratch_areas.add(scratch.prefix)
        return scratch

    def writer(self, *, max_size: int | None = None) -> S3BlobWriter:
        return S3BlobWriter(self, max_size)

    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        expected: str | None = None,
        *,
        max_size: int | None = None,
    ) -> str:
        return await put_through(self.writer(max_size=max_size), data, expected)

    async def import_file(self, path: Path, expected: str) -> str:
        parse_digest(expected)
        fh = await anyio.to_thread.run_sync(path.open, "rb")
        try:
            async with self.writer() as w:
                while chunk := await anyio.to_thread.run_sync(fh.read, self.part_bytes):
                    await w.write(chunk)
                digest = await w.commit(expected)
        finally:
            fh.close()
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        return digest

    async def _head(self, digest: str) -> int | None:
        key = self.key(digest)  # validates the digest
        client = await self.client()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                self._sizes.pop(digest, None)
                return None
            raise BlobError(f"object store: {exc}") from exc
        size = int(head["ContentLength"])
        self._remember(digest, size)
        return size

    async def exists(self, digest: str) -> bool:
        if self._known_size(digest) is not None:
            return True
        return await self._head(digest) is not None

    async def size(self, digest: str) -> int:
        found = self._known_size(digest)
        if found is None:
            found = await self._head(digest)
        if found is None:
            raise BlobNotFound(digest)
        return found

    async def delete(self, digest: str) -> bool:
        key = self.key(digest)
        self._sizes.pop(digest, None)
        if await self._head(digest) is None:
            return False
        client = await self.client()
        await client.delete_object(Bucket=self.bucket, Key=key)
        self._sizes.pop(digest, None)
        return True

    async def open(
        self, digest: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        key = self.key(digest)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start != 0 or end is not None:
            stop = check_range(start, end, await self.size(digest))
            if stop == start:
                return
            args["Range"] = f"bytes={start}-{stop - 1}"
        client = await self.client()
        try:
            response = await client.get_object(**args)
        except ClientError as exc:
            if _missing(exc):
                self._sizes.pop(digest, None)
                raise BlobNotFound(digest) from None
            raise BlobError(f"object store: {exc}") from exc
        async with response["Body"] as body:
            while chunk := await body.read(chunk_size):
                yield chunk

    async def read_bytes(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.open(digest)])

    def local_path(self, digest: str) -> Path | None:
        return None

    def local_file(self, digest: str) -> LocalFile | None:
        return None

    async def direct_url(
        self, digest: str, size: int, media_type: str, *, scheme: str, host: str
    ) -> str | None:
        if not self.presign or size < self.redirect_min_bytes:
            return None
        # Presigning costs about as much CPU as the rest of a download request: a URL is
        # reused for the first quarter of its lifetime, so a client always gets one that is
        # valid for at least three quarters of url_ttl_seconds.
        now = time.monotonic()
        hit = self._presigned.get((digest, media_type))
        if hit is not None and hit[1] > now:
            return hit[0]
        client = await self.client("presign")
        url = await client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(digest),
                "ResponseContentType": media_type,
            },
            ExpiresIn=self.url_ttl_seconds,
        )
        if len(self._presigned) >= 10_000:
            self._presigned.clear()
        self._presigned[(digest, media_type)] = (url, now + self.url_ttl_seconds / 4)
        return url

    async def check(self) -> None:
        client = await self.client()
        key = f"{self.prefix}{_TMP}ready-{secrets.token_hex(8)}"
        try:
            await client.put_object(Bucket=self.bucket, Key=key, Body=b"ok")
            await client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise BlobError(f"object store bucket {self.bucket} is not writable: {exc}") from exc

    async def cleanup_stale_uploads(self, older_than_seconds: float) -> int:
        client = await self.client()
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds)
        prefix = f"{self.prefix}{_TMP}"
        removed = 0

        async def stale_upload(upload: MultipartUploadTypeDef) -> bool:
            key, reported = upload["Key"], upload["Initiated"]
            started, _, _ = key[len(prefix) :].partition("-")
            if key.startswith(prefix) and started.isdigit():
                return dt.datetime.fromtimestamp(int(started), dt.UTC) <= cutoff
            # A scratch write: its newest part says when its writer was last alive.
            listed = await client.list_parts(
                Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
            )
            return (
                max((p["LastModified"] for p in listed.get("Parts", [])), default=reported)
                <= cutoff
            )

        def stale(key: str, reported: dt.datetime) -> bool:
            started, _, _ = key[len(prefix) :].partition("-")
            if started.isdigit():
                return dt.datetime.fromtimestamp(int(started), dt.UTC) <= cutoff
            return reported <= cutoff

        # Unfinished multipart uploads of blob writes (tmp/) and of scratch writes whose
        # process died (each scratch area this process uses).
        uploads = client.get_paginator("list_multipart_uploads")
        for under in (prefix, *sorted(self._scratch_areas)):
            async for page in uploads.paginate(Bucket=self.bucket, Prefix=under):
                for upload in page.get("Uploads", []):
                    if await stale_upload(upload):
                        with contextlib.suppress(ClientError):
                            await client.abort_multipart_upload(
                                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                            )
                            removed += 1
        listing = client.get_paginator("list_objects_v2")
        async for listed in listing.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in listed.get("Contents", []):
                if stale(obj["Key"], obj["LastModified"]):
                    await client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                    removed += 1
        return removed


if TYPE_CHECKING:
    # Static proof that the backend satisfies the protocol (checked by mypy only).
    def _conforms(store: S3BlobStore) -> BlobStore:
        return store
