"""`graft vulns import`: OSV records from a zip (the OSV export layout), a directory of JSON
files, one JSON file, or a URL to any of those.

Incremental: a record already held with the same or a newer `modified` is not written again.
Atomic: every change is made in one transaction, so an interrupted import (an error, Ctrl-C, a
killed process) leaves the advisories as they were. The library entries of every package an
imported record names are made due in the same transaction; their status is computed after.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, insert, select, update

from graft.db import Database
from graft.db.models import Advisory, AdvisoryAffected
from graft.errors import InvalidInput
from graft.vulns import osv
from graft.vulns.models import ImportSummary
from graft.vulns.schemes import VersionScheme, by_osv_name
from graft.vulns.status import mark_due_in

MAX_RECORD_BYTES = 16 << 20  # one OSV record; a bigger zip member is refused, not read
BATCH = 1000
Progress = Callable[[int, int], None]  # (records done, records in all)


class _Source:
    """The records of an import source as (name, bytes), and how many there are."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.names = sorted(str(p.relative_to(path)) for p in path.rglob("*.json"))
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            self.names = sorted(
                i.filename
                for i in self._zip.infolist()
                if not i.is_dir() and i.filename.endswith(".json")
            )
        elif path.is_file():
            self.names = [path.name]
        else:
            raise InvalidInput(f"{path}: not a zip of OSV records, a directory or a JSON file")

    def read(self) -> Iterator[tuple[str, bytes | str]]:
        """(name, content) or (name, problem) for a member too big to read."""
        for name in self.names:
            if self._zip is not None:
                info = self._zip.getinfo(name)
                if info.file_size > MAX_RECORD_BYTES:
                    yield name, f"larger than {MAX_RECORD_BYTES} bytes"
                    continue
                yield name, self._zip.read(info)
            else:
                file = self.path / name if self.path.is_dir() else self.path
                if file.stat().st_size > MAX_RECORD_BYTES:
                    yield name, f"larger than {MAX_RECORD_BYTES} bytes"
                    continue
                yield name, file.read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@contextlib.contextmanager
def _local(source: str, http: httpx.Client | None) -> Iterator[Path]:
    if not source.startswith(("http://", "https://")):
        yield Path(source)
        return
    suffix = ".json" if source.split("?")[0].endswith(".json") else ".zip"
    with tempfile.TemporaryDirectory(prefix="graft-osv-") as tmp:
        target = Path(tmp) / f"download{suffix}"
        client = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))
        try:
            with client.stream("GET", source, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    raise InvalidInput(f"{source}: HTTP {resp.status_code}")
                with target.open("wb") as fh:
                    for chunk in resp.iter_bytes(1 << 20):
                        fh.write(chunk)
        except httpx.HTTPError as exc:
            raise InvalidInput(f"{source}: {exc}") from None
        finally:
            if http is None:
                client.close()
        yield target


def _row(rec: osv.Record) -> dict[str, Any]:
    return {
        "osv_id": rec.osv_id,
        "modified": rec.modified,
        "published": rec.published,
        "withdrawn": rec.withdrawn,
        "aliases": rec.aliases,
        "summary": rec.summary,
        "details": rec.details,
        "severity_vector": rec.severity.vector,
        "severity_score": rec.severity.score,
        "severity_level": rec.severity.level,
        "references": rec.references,
    }


async def import_osv(
    db: Database,
    schemes: dict[str, VersionScheme],
    source: str,
    *,
    progress: Progress | None = None,
    http: httpx.Client | None = None,
) -> ImportSummary:
    osv_schemes = by_osv_name(schemes)
    with _local(source, http) as path:
        src = _Source(path)
        try:
            return await _import(db, osv_schemes, src, source, progress)
        finally:
            src.close()


async def _import(
    db: Database,
    osv_schemes: dict[str, VersionScheme],
    src: _Source,
    label: str,
    progress: Progress | None,
) -> ImportSummary:
    total = len(src.names)
    malformed: list[str] = []
    unknown: Counter[str] = Counter()
    counts = Counter[str]()
    async with db.session() as s:  # one transaction: all or nothing
        held = {
            osv_id: (adv_id, modified)
            for osv_id, adv_id, modified in await s.execute(
                select(Advisory.osv_id, Advisory.id, Advisory.modified)
            )
        }
        batch: list[osv.Record] = []
        seen: set[str] = set()
        touched: set[tuple[str, str]] = set()
        done = 0
        for name, content in src.read():
            done += 1
            if isinstance(content, str):
                malformed.append(f"{name}: {content}")
                continue
            try:
                rec = osv.parse(json.loads(content), osv_schemes)
            except (ValueError, UnicodeDecodeError) as exc:
                reason = "not JSON" if not isinstance(exc, osv.Malformed) else str(exc)
                malformed.append(f"{name}: {reason}")
                continue
            counts["records"] += 1
            unknown.update(rec.unknown)
            old = held.get(rec.osv_id)
            if rec.osv_id in seen or (old is not None and old[1] >= rec.modified):
                counts["unchanged"] += 1
            elif old is None and not rec.affected:
                counts["skipped"] += 1
            else:
                seen.add(rec.osv_id)
                batch.append(rec)
                if len(batch) >= BATCH:
                    counts.update(await _write(s, batch, held, touched))
                    batch = []
            if progress is not None and (done % 200 == 0 or done == total):
                progress(done, total)
        if batch:
            counts.update(await _write(s, batch, held, touched))
        # once, at the end: an entry named by many records is updated once
        counts["due"] += await mark_due_in(s, touched)
        if progress is not None:
            progress(total, total)
    return ImportSummary(
        source=label,
        records=counts["records"],
        imported=counts["imported"],
        unchanged=counts["unchanged"],
        skipped=counts["skipped"],
        withdrawn=counts["withdrawn"],
        malformed=malformed,
        unknown_ecosystems=dict(sorted(unknown.items())),
        entries_to_refresh=counts["due"],
    )


async def _write(
    s: Any,
    batch: list[osv.Record],
    held: dict[str, tuple[int, Any]],
    touched: set[tuple[str, str]],
) -> Counter[str]:
    """Write one batch; adds the (ecosystem, package) pairs it names to `touched`."""
    counts = Counter[str]()
    new = [r for r in batch if r.osv_id not in held]
    changed = [r for r in batch if r.osv_id in held]
    ids: dict[str, int] = {}
    if new:
        result = await s.execute(
            insert(Advisory).returning(Advisory.id, Advisory.osv_id), [_row(r) for r in new]
        )
        ids.update({osv_id: adv_id for adv_id, osv_id in result})
    if changed:
        old_ids = [held[r.osv_id][0] for r in changed]
        await s.execute(update(Advisory), [{"id": held[r.osv_id][0], **_row(r)} for r in changed])
        rows = await s.execute(
            select(AdvisoryAffected.ecosystem, AdvisoryAffected.package).where(
                AdvisoryAffected.advisory_id.in_(old_ids)
            )
        )
        touched.update((eco, pkg) for eco, pkg in rows)
        await s.execute(delete(AdvisoryAffected).where(AdvisoryAffected.advisory_id.in_(old_ids)))
        ids.update({r.osv_id: held[r.osv_id][0] for r in changed})
    affected = []
    for rec in batch:
        for a in rec.affected:
            touched.add((a.ecosystem, a.package))
            affected.append(
                {
                    "advisory_id": ids[rec.osv_id],
                    "ecosystem": a.ecosystem,
                    "distribution": a.distribution,
                    "package": a.package,
                    "ranges": a.ranges,
                    "versions": a.versions,
                }
            )
        held[rec.osv_id] = (ids[rec.osv_id], rec.modified)
        counts["imported"] += 1
        counts["withdrawn"] += rec.withdrawn is not None
    if affected:
        await s.execute(insert(AdvisoryAffected), affected)
    return counts
