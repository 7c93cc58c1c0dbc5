"""Computing the status columns of library entries, in the background.

An entry whose `status` is NULL is due: new entries (written by `graft.usage`), and those an
import or a publish touched (`mark_due`). `refresh` computes due entries in batches; it runs from
the housekeeping loop and before each library query, so downloads never wait for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from graft.db import Database
from graft.db.models import LibraryEntry, Organization
from graft.vulns.matching import KnownAdvisory, PatchedBuild, Verdict, verdict
from graft.vulns.schemes import VersionScheme
from graft.vulns.store import by_prefix, load_advisories, load_builds

BATCH = 5000

_COLUMNS = (
    LibraryEntry.id,
    LibraryEntry.org_id,
    LibraryEntry.ecosystem,
    LibraryEntry.distribution,
    LibraryEntry.package,
    LibraryEntry.version,
    LibraryEntry.served,
    LibraryEntry.source,
    LibraryEntry.source_version,
)


def advisory_key(entry: Any) -> tuple[str, str]:
    """The (ecosystem, package) advisories name for an entry: its source package, if any."""
    return entry.ecosystem, entry.source or entry.package


def entry_verdict(
    schemes: dict[str, VersionScheme],
    entry: Any,
    advisories: dict[tuple[str, str], list[KnownAdvisory]],
    builds: dict[tuple[int, str, str], list[PatchedBuild]],
) -> Verdict:
    """`entry`: anything with org_id, ecosystem, distribution, package, version, served,
    source, source_version. Advisories match the source (name and version); patched builds
    are the organization's builds of the binary package."""
    scheme = schemes.get(entry.ecosystem)
    mine = builds.get((entry.org_id, entry.ecosystem, entry.package), [])
    dist = entry.distribution
    of_upstream = [
        b
        for b in mine
        if b.upstream_version == entry.version and (not b.distribution or b.distribution == dist)
    ]
    in_use = next((b for b in mine if b.version == entry.version), None)
    return verdict(
        scheme,
        version=entry.source_version or entry.version,
        distribution=dist,
        served=entry.served,
        advisories=advisories.get(advisory_key(entry), []),
        builds_of_upstream=of_upstream,
        build_in_use=in_use,
    )


async def compute(
    db: Database, schemes: dict[str, VersionScheme], entries: Sequence[Any]
) -> list[dict[str, Any]]:
    """The status columns of each entry, as `b_id` + column parameters for one UPDATE."""
    async with db.session() as s:
        advisories = await load_advisories(s, schemes, {advisory_key(e) for e in entries})
        builds = await load_builds(s, {(e.org_id, e.ecosystem, e.package) for e in entries})
    out = []
    for e in entries:
        cols = entry_verdict(schemes, e, advisories, builds).columns()
        out.append({"b_id": e.id, **{f"b_{k}": v for k, v in cols.items()}})
    return out


_UPDATE = (
    update(LibraryEntry)
    .where(LibraryEntry.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        critical=bindparam("b_critical"),
        high=bindparam("b_high"),
        severity=bindparam("b_severity"),
        advisories=bindparam("b_advisories"),
        patched_version=bindparam("b_patched_version"),
    )
)


async def refresh(
    db: Database,
    schemes: dict[str, VersionScheme],
    *,
    org_id: int | None = None,
    batch: int = BATCH,
) -> int:
    """Compute every due entry (of one organization, or all); returns how many."""
    done = 0
    last: tuple[str, str, int] | None = None
    # In package order, so that a package's advisories are loaded once, not once per batch.
    order = (LibraryEntry.ecosystem, LibraryEntry.package, LibraryEntry.id)
    while True:
        query = select(*_COLUMNS).where(LibraryEntry.status.is_(None))
        if org_id is not None:
            query = query.where(LibraryEntry.org_id == org_id)
        if last is not None:
            query = query.where(tuple_(*order) > tuple_(*last))
        async with db.session() as s:
            rows = (await s.execute(query.order_by(*order).limit(batch))).all()
        if not rows:
            return done
        params = await compute(db, schemes, rows)
        async with db.session() as s:
            await (await s.connection()).execute(_UPDATE, params)
        done += len(rows)
        last = (rows[-1].ecosystem, rows[-1].package, rows[-1].id)
        if len(rows) < batch:
            return done


async def mark_due(
    db: Database,
    packages: Iterable[tuple[str, str]] = (),
    *,
    org_id: int | None = None,
    everything: bool = False,
) -> int:
    """Make entries of these (ecosystem, package) pairs due again (OS entries also by their
    source package); returns how many."""
    async with db.session() as s:
        return await mark_due_in(s, packages, org_id=org_id, everything=everything)


async def mark_due_in(
    s: AsyncSession,
    packages: Iterable[tuple[str, str]] = (),
    *,
    org_id: int | None = None,
    everything: bool = False,
) -> int:
    """`mark_due` inside the caller's transaction (an import marks in its own)."""
    if everything:
        query = update(LibraryEntry).values(status=None)
        if org_id is not None:
            query = query.where(LibraryEntry.org_id == org_id)
        result = await s.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)
    count = 0
    pairs = set(packages)
    if not pairs:
        return 0
    # per organization, so that the (org_id, ecosystem, package) index serves the update
    orgs = [org_id] if org_id is not None else list(await s.scalars(select(Organization.id)))
    for (ecosystem,), names in by_prefix(pairs):
        # by package and by source (set only where an ecosystem's advisories name source
        # packages: Debian, Ubuntu, Alpine): two statements rather than an OR, so that each is
        # served by its own index
        for org in orgs:
            for column in (LibraryEntry.package, LibraryEntry.source):
                result = await s.execute(
                    update(LibraryEntry)
                    .where(
                        LibraryEntry.org_id == org,
                        LibraryEntry.ecosystem == ecosystem,
                        column.in_(names),
                    )
                    .values(status=None)
                )
                count += int(getattr(result, "rowcount", 0) or 0)
    return count
