"""Garbage collection of the registry, safe while pushes run.

1. Upload sessions idle for `upload_idle_seconds` are removed with their chunks, and so are
   chunks no session owns (a live push touches its session with every chunk).
2. Blob links that no manifest of their repository references and that no pusher asked for in
   `grace_seconds` are dropped; the blobs become candidates. The grace period is what keeps the
   layers of a push whose manifest has not arrived yet: each upload and each `HEAD` of the blob
   by the pusher renews it.
3. A candidate is deleted from the blob store only if, inside the transaction that claims it,
   nothing uses the digest: no link, manifest or reference in any repository, no catalog file of
   another ecosystem, no cached upstream page or verified upstream file. A push that links the
   digest meanwhile deletes the same candidate row first, so the two serialise on it and the
   blob survives.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from graft.blobs import BlobStore
from graft.ecosystems.oci.store import MetaStore
from graft.ecosystems.oci.uploads import UploadStore

log = logging.getLogger("graft.oci")

GRACE_SECONDS = 3600.0
UPLOAD_IDLE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class GcResult:
    uploads: int
    unlinked: int
    deleted: int


async def collect(
    meta: MetaStore,
    blobs: BlobStore,
    uploads: UploadStore,
    *,
    grace_seconds: float = GRACE_SECONDS,
    upload_idle_seconds: float = UPLOAD_IDLE_SECONDS,
) -> GcResult:
    removed_uploads = await uploads.sweep(upload_idle_seconds)
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=grace_seconds)
    unlinked = await meta.unlink_unreferenced(cutoff)
    # Candidates are taken at once (their grace already ran on the links that kept them).
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    deleted = 0

    async def remove(digest: str) -> None:
        await blobs.delete(digest)

    while True:
        batch = await meta.candidates(now)
        if not batch:
            break
        for digest in batch:
            if await meta.collect(digest, remove):
                deleted += 1
        if len(batch) < 1000:
            break
    if removed_uploads or unlinked or deleted:
        log.info(
            "registry gc: %d abandoned uploads, %d unreferenced links, %d blobs deleted",
            removed_uploads,
            unlinked,
            deleted,
        )
    return GcResult(removed_uploads, unlinked, deleted)
