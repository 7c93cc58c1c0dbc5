"""Blob upload sessions, kept on disk so any worker (or replica sharing the volume) can take the
next chunk: `<blob_dir>/oci-uploads/<id>.data` holds the bytes received so far and
`<id>.json` the repository it belongs to. The offset is the data file's size.

An upload finishes by moving the data file into the blob store (`BlobStore.import_file`, which
hashes it first); nothing becomes visible before the digest is checked. Sessions idle longer than
the garbage collector's limit are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

_ID = re.compile(r"[0-9a-f]{32}")
_BATCH = 1 << 20


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    space: str
    repository: str
    data: Path

    def size(self) -> int:
        try:
            return self.data.stat().st_size
        except FileNotFoundError:
            return -1


class UploadStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    async def create(self, space: str, repository: str) -> Upload:
        upload_id = secrets.token_hex(16)
        meta = json.dumps({"space": space, "repository": repository, "created": time.time()})

        def make() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / f"{upload_id}.json").write_text(meta)
            (self.root / f"{upload_id}.data").touch(exist_ok=False)

        await anyio.to_thread.run_sync(make)
        return Upload(upload_id, space, repository, self.root / f"{upload_id}.data")

    def get(self, upload_id: str, space: str, repository: str) -> Upload | None:
        """The session if it exists and belongs to this repository (else None)."""
        if not _ID.fullmatch(upload_id):
            return None
        try:
            meta = json.loads((self.root / f"{upload_id}.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        if meta.get("space") != space or meta.get("repository") != repository:
            return None
        data = self.root / f"{upload_id}.data"
        if not data.exists():
            return None
        return Upload(upload_id, space, repository, data)

    async def append(
        self, upload: Upload, body: AsyncIterator[bytes], *, limit: int | None = None
    ) -> int:
        """Append a request body; returns the bytes written. `limit` caps the total size."""
        fd = await anyio.to_thread.run_sync(
            lambda: os.open(upload.data, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        )
        written = 0
        start = os.fstat(fd).st_size
        pending: list[bytes] = []
        pending_size = 0

        def flush(batch: list[bytes]) -> None:
            for chunk in batch:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]

        try:
            async for chunk in body:
                if not chunk:
                    continue
                written += len(chunk)
                if limit is not None and start + written > limit:
                    raise OverflowError(limit)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= _BATCH:
                    batch, pending, pending_size = pending, [], 0
                    await anyio.to_thread.run_sync(flush, batch)
            if pending:
                await anyio.to_thread.run_sync(flush, pending)
        except BaseException:
            # A broken or refused chunk leaves the session as it was before this request.
            os.ftruncate(fd, start)
            raise
        finally:
            os.close(fd)
        return written

    def remove(self, upload: Upload) -> None:
        for suffix in (".data", ".json"):
            (self.root / f"{upload.id}{suffix}").unlink(missing_ok=True)
        self._locks.pop(upload.id, None)

    def finished(self, upload: Upload) -> None:
        """The data file was moved into the blob store: drop what is left of the session."""
        self.remove(upload)

    async def sweep(self, idle_seconds: float) -> int:
        """Remove sessions untouched for `idle_seconds`; returns how many."""

        def run() -> int:
            cutoff = time.time() - idle_seconds
            removed = 0
            try:
                entries = list(os.scandir(self.root))
            except FileNotFoundError:
                return 0
            for entry in entries:
                if not entry.name.endswith(".json"):
                    continue
                upload_id = entry.name.removesuffix(".json")
                data = self.root / f"{upload_id}.data"
                try:
                    newest = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, data.stat().st_mtime)
                if newest <= cutoff:
                    data.unlink(missing_ok=True)
                    (self.root / entry.name).unlink(missing_ok=True)
                    self._locks.pop(upload_id, None)
                    removed += 1
            return removed

        return await anyio.to_thread.run_sync(run)
