"""Chunked blob upload sessions (`POST`, `PATCH`…, `PUT`), seen alike by every replica.

A session is a row of `oci_uploads` (space, repository, `size` = the offset the next chunk
must start at); each accepted chunk is a row of `oci_upload_chunks` naming a scratch object of
the blob store (`BlobStore.scratch("oci-uploads")`: files under `<blob_dir>/oci-uploads/`, or
objects under `<prefix>oci-uploads/` of the bucket) called `<id>/<offset>-<random>`. So a
client's requests may land on any replica, and a replica may die between them.

Appending writes the chunk's bytes to a fresh scratch object first, then moves the offset by
compare-and-set in the transaction that records the chunk (`UPDATE … WHERE size = :expected`):
of two chunks sent for the same offset, to one replica or two, one wins and the other is
deleted and refused (416, as an out-of-order chunk is). A chunk that breaks off, is too long
or too short, or whose process dies, never reaches the database: the session stays as it was
and the client may send it again.

Finishing streams the chunks in order through the blob store's verifying writer (hashed as it
goes, committed only if the digest matches); nothing becomes visible before the digest is
checked. A session held in one local file goes by `BlobStore.import_file` instead (hash, then
rename: the usual single-`PATCH` push on the filesystem store costs no copy). The chunks and
the row are removed afterwards, on cancel, and by the garbage collector (`sweep`) once the
session is idle longer than its limit; `sweep` also removes scratch objects no session owns
(left by a killed process).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from graft.blobs import BlobError, BlobNotFound, BlobStore
from graft.db import Database
from graft.db.models import OciUpload, OciUploadChunk, utcnow

log = logging.getLogger("graft.oci")

AREA = "oci-uploads"
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    space: str
    repository: str
    size: int  # bytes received when the session was read


class UploadGone(Exception):
    """The session was finished, cancelled or collected meanwhile."""


class OffsetConflict(Exception):
    """Another chunk moved the offset first; `size` is where the session is now."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the upload holds {size} bytes")
        self.size = size


class LengthMismatch(Exception):
    def __init__(self, written: int, expected: int) -> None:
        super().__init__(f"the chunk has {written} bytes but Content-Range said {expected}")
        self.written = written
        self.expected = expected


async def _nonempty(body: AsyncIterable[bytes]) -> AsyncIterator[bytes] | None:
    """`body` from its first non-empty piece on, or None if it has none (an empty `PUT` then
    costs no scratch object)."""
    stream = aiter(body)
    async for first in stream:
        if first:
            break
    else:
        return None

    async def rest() -> AsyncIterator[bytes]:
        yield first
        async for chunk in stream:
            yield chunk

    return rest()


class UploadStore:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs
        self.scratch = blobs.scratch(AREA)

    async def create(self, space: str, repository: str) -> Upload:
        upload_id = secrets.token_hex(16)
        now = utcnow()
        async with self.db.session() as s:
            s.add(
                OciUpload(
                    id=upload_id,
                    space=space,
                    repository=repository,
                    size=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        return Upload(upload_id, space, repository, 0)

    async def get(self, upload_id: str, space: str, repository: str) -> Upload | None:
        """The session if it exists and belongs to this repository (else None)."""
        if not _ID.fullmatch(upload_id):
            return None
        async with self.db.session() as s:
            row = await s.get(OciUpload, upload_id)
        if row is None or row.space != space or row.repository != repository:
            return None
        return Upload(row.id, row.space, row.repository, row.size)

    async def append(
        self,
        upload: Upload,
        body: AsyncIterable[bytes],
        *,
        expected_length: int | None = None,
        limit: int | None = None,
    ) -> int:
        """Append a request body at `upload.size`; return the session's new size. Raises
        OffsetConflict, UploadGone, LengthMismatch or BlobTooLarge (`limit` caps the whole
        blob), each leaving the session as it was."""
        start = upload.size
        data = await _nonempty(body)
        if data is None:
            if expected_length:
                raise LengthMismatch(0, expected_length)
            return start
        name = f"{upload.id}/{start:015d}-{secrets.token_hex(6)}"
        room = None if limit is None else max(limit - start, 0)
        written = await self.scratch.write(name, data, max_size=room)
        if expected_length is not None and written != expected_length:
            await self._discard(name)
            raise LengthMismatch(written, expected_length)
        # If this transaction fails its outcome may be unknown (a lost COMMIT): the chunk then
        # stays, and goes with the session's other chunks (`remove`, `sweep`).
        async with self.db.session() as s:
            moved = await s.execute(
                update(OciUpload)
                .where(OciUpload.id == upload.id, OciUpload.size == start)
                .values(size=start + written, updated_at=utcnow())
            )
            if moved.rowcount == 1:  # type: ignore[attr-defined]
                s.add(OciUploadChunk(upload_id=upload.id, offset=start, size=written, name=name))
                return start + written
            now = await s.scalar(select(OciUpload.size).where(OciUpload.id == upload.id))
        await self._discard(name)
        raise UploadGone() if now is None else OffsetConflict(now)

    async def _discard(self, name: str) -> None:
        try:
            await self.scratch.delete(name)
        except Exception as exc:  # it goes with the session (`remove`, `sweep`)
            log.warning("could not remove the refused upload chunk %s: %s", name, exc)

    async def finish(self, upload: Upload, digest: str, *, max_size: int | None = None) -> None:
        """Publish the session's bytes as the blob `digest` (DigestMismatch: they are not).
        The session stays; `remove` it after."""
        async with self.db.session() as s:
            size = await s.scalar(select(OciUpload.size).where(OciUpload.id == upload.id))
            if size is None:
                raise UploadGone()
            # Touching the session keeps the collector off it while it is being assembled.
            await s.execute(
                update(OciUpload).where(OciUpload.id == upload.id).values(updated_at=utcnow())
            )
            chunks = list(
                await s.execute(
                    select(OciUploadChunk.offset, OciUploadChunk.size, OciUploadChunk.name)
                    .where(OciUploadChunk.upload_id == upload.id, OciUploadChunk.offset < size)
                    .order_by(OciUploadChunk.offset)
                )
            )
        at = 0
        for offset, length, _ in chunks:
            if offset != at:
                raise BlobError(f"upload {upload.id} lacks bytes {at}-{offset - 1}")
            at += length
        if at != size:
            raise BlobError(f"upload {upload.id} holds {at} of its {size} bytes")
        try:
            local = self.scratch.local_path(chunks[0].name) if len(chunks) == 1 else None
            if local is not None:
                await self.blobs.import_file(local, digest)
                return
            async with self.blobs.writer(max_size=max_size) as writer:
                for chunk in chunks:
                    async for piece in self.scratch.read(chunk.name):
                        await writer.write(piece)
                await writer.commit(digest)
        except (BlobNotFound, FileNotFoundError):
            # A concurrent (or an earlier, interrupted) finish or a cancel took the chunks first.
            if await self.blobs.exists(digest):
                return  # published, verified, by that finish
            if await self.get(upload.id, upload.space, upload.repository) is None:
                raise UploadGone() from None
            raise

    async def remove(self, upload: Upload) -> None:
        """Drop the session and its chunks (finished, refused or cancelled)."""
        async with self.db.session() as s:
            await s.execute(delete(OciUpload).where(OciUpload.id == upload.id))
        await self.scratch.delete_tree(upload.id)

    async def sweep(self, idle_seconds: float) -> int:
        """Remove sessions untouched for `idle_seconds`, and scratch objects as old as that
        which no session owns; returns how many sessions."""
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=idle_seconds)
        async with self.db.session() as s:
            idle = list(await s.scalars(select(OciUpload.id).where(OciUpload.updated_at <= cutoff)))
        removed = 0
        for upload_id in idle:
            async with self.db.session() as s:
                gone = await s.execute(
                    # re-checked: a chunk may have arrived since the query above
                    delete(OciUpload).where(
                        OciUpload.id == upload_id, OciUpload.updated_at <= cutoff
                    )
                )
            if gone.rowcount == 1:  # type: ignore[attr-defined]
                await self.scratch.delete_tree(upload_id)
                removed += 1
        names = await self.scratch.stale(idle_seconds)
        owners = sorted({name.split("/", 1)[0] for name in names})
        live: set[str] = set()
        for at in range(0, len(owners), 500):
            async with self.db.session() as s:
                batch = select(OciUpload.id).where(OciUpload.id.in_(owners[at : at + 500]))
                live.update(await s.scalars(batch))
        for name in names:
            if name.split("/", 1)[0] not in live:
                await self._discard(name)
        return removed
