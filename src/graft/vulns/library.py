"""My Library queries: the organization's entries with their status, filtered, sorted and
paged by cursor; one entry with its advisories before and after the patched build.

Every query is scoped to one organization: an id from another answers 404.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from graft.db import Database
from graft.db.models import Account, Advisory, CatalogArtifact, LibraryEntry, LibraryEntryAccount
from graft.errors import InvalidInput, NotFound
from graft.vulns.matching import KnownAdvisory, PatchedBuild
from graft.vulns.models import (
    LEVELS,
    AdvisoryView,
    EntryAccount,
    LibraryEntryDetail,
    LibraryEntryView,
    LibraryPage,
    LibraryQuery,
    PatchedBuildView,
    level_rank,
)
from graft.vulns.ranges import fixed_versions
from graft.vulns.schemes import VersionScheme
from graft.vulns.status import advisory_key, entry_verdict
from graft.vulns.store import load_advisories, load_builds

MAX_LIMIT = 500
_SORTS: dict[str, Any] = {
    "package": LibraryEntry.package,
    "last_seen": LibraryEntry.last_seen,
    "count": LibraryEntry.count,
    "severity": LibraryEntry.severity,
}


def install_command(
    schemes: dict[str, VersionScheme], ecosystem: str, package: str, version: str | None, dist: str
) -> str | None:
    scheme = schemes.get(ecosystem)
    if version is None or scheme is None or scheme.install_command is None:
        return None
    return scheme.install_command(package, version, dist)


def entry_view(schemes: dict[str, VersionScheme], e: LibraryEntry) -> LibraryEntryView:
    return LibraryEntryView(
        id=e.id,
        ecosystem=e.ecosystem,
        distribution=e.distribution,
        package=e.package,
        version=e.version,
        source=e.source,
        source_version=e.source_version,
        served=e.served,
        first_seen=e.first_seen,
        last_seen=e.last_seen,
        count=e.count,
        status=e.status,
        critical=e.critical,
        high=e.high,
        severity=LEVELS[e.severity] if 0 <= e.severity < len(LEVELS) else "unknown",
        advisories=e.advisories,
        patched_version=e.patched_version,
        install_command=install_command(
            schemes, e.ecosystem, e.package, e.patched_version, e.distribution
        ),
    )


def _encode(sort: str, value: Any, entry_id: int) -> str:
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps([sort, value, entry_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_sort, value, entry_id = json.loads(raw)
        if got_sort != sort or not isinstance(entry_id, int):
            raise ValueError
        if sort.lstrip("-") == "last_seen":
            value = dt.datetime.fromisoformat(value)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor does not belong to this listing (start again without it)"
        ) from None
    return value, entry_id


def _filters(org_id: int, q: LibraryQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [LibraryEntry.org_id == org_id]
    if q.ecosystem:
        where.append(LibraryEntry.ecosystem == q.ecosystem)
    if q.status:
        where.append(LibraryEntry.status == q.status)
    if q.severity:
        where.append(LibraryEntry.severity >= level_rank(q.severity))
    if q.text:
        where.append(func.lower(LibraryEntry.package).contains(q.text.lower(), autoescape=True))
    return where


async def list_entries(
    db: Database, schemes: dict[str, VersionScheme], org_id: int, q: LibraryQuery
) -> LibraryPage:
    if not 1 <= q.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    desc = q.sort.startswith("-")
    column = _SORTS[q.sort.lstrip("-")]
    where = _filters(org_id, q)
    async with db.session() as s:
        total = int(
            (
                await s.execute(select(func.count()).select_from(LibraryEntry).where(*where))
            ).scalar_one()
        )
        page = list(where)
        if q.cursor:
            value, after_id = _decode(q.cursor, q.sort)
            if desc:
                page.append(or_(column < value, and_(column == value, LibraryEntry.id < after_id)))
            else:
                page.append(or_(column > value, and_(column == value, LibraryEntry.id > after_id)))
        order = (column.desc(), LibraryEntry.id.desc()) if desc else (column, LibraryEntry.id)
        rows = list(
            await s.scalars(select(LibraryEntry).where(*page).order_by(*order).limit(q.limit + 1))
        )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    cursor = None
    if more and rows:
        last = rows[-1]
        cursor = _encode(q.sort, getattr(last, column.key), last.id)
    return LibraryPage(
        items=[entry_view(schemes, r) for r in rows], next_cursor=cursor, total=total
    )


def advisory_view(row: Advisory, known: KnownAdvisory, fixes: tuple[str, ...]) -> AdvisoryView:
    return AdvisoryView(
        id=row.osv_id,
        aliases=list(row.aliases or []),
        summary=row.summary,
        severity_level=row.severity_level,
        severity_score=row.severity_score,
        severity_vector=row.severity_vector,
        published=row.published,
        modified=row.modified,
        fixed_in=fixed_versions(known.ranges),
        references=list(row.references or [])[:20],
        fixed_by_patch=known.fixed_by(fixes),
    )


async def advisory_rows(db: Database, ids: set[int]) -> dict[int, Advisory]:
    if not ids:
        return {}
    async with db.session() as s:
        rows = await s.scalars(select(Advisory).where(Advisory.id.in_(sorted(ids))))
        return {r.id: r for r in rows}


async def get_entry(
    db: Database, schemes: dict[str, VersionScheme], org_id: int, entry_id: int
) -> LibraryEntryDetail:
    async with db.session() as s:
        entry = await s.get(LibraryEntry, entry_id)
        if entry is None or entry.org_id != org_id:
            raise NotFound(f"library entry {entry_id} not found")
        accounts = [
            EntryAccount(account=name, count=count, last_seen=seen)
            for name, count, seen in await s.execute(
                select(Account.name, LibraryEntryAccount.count, LibraryEntryAccount.last_seen)
                .join(Account, Account.id == LibraryEntryAccount.account_id)
                .where(LibraryEntryAccount.entry_id == entry_id)
                .order_by(LibraryEntryAccount.last_seen.desc())
            )
        ]
        advisories = await load_advisories(s, schemes, [advisory_key(entry)])
        builds = await load_builds(s, [(org_id, entry.ecosystem, entry.package)])
    verdict = entry_verdict(schemes, entry, advisories, builds)
    rows = await advisory_rows(db, {a.advisory_id for a in verdict.before})
    build: PatchedBuild | None = verdict.patched
    fixes = build.fixes if build else ()
    before = [advisory_view(rows[a.advisory_id], a, fixes) for a in verdict.before]
    after = None
    if verdict.after is not None:
        after = [advisory_view(rows[a.advisory_id], a, fixes) for a in verdict.after]
    build_view = None
    if build is not None:
        async with db.session() as s:
            published = (
                await s.execute(
                    select(func.min(CatalogArtifact.created_at)).where(
                        CatalogArtifact.id.in_(build.file_ids)
                    )
                )
            ).scalar_one()
        build_view = PatchedBuildView(
            version=build.version,
            upstream_version=build.upstream_version,
            fixes=list(build.fixes),
            published_at=published,
            install_command=install_command(
                schemes, entry.ecosystem, entry.package, build.version, entry.distribution
            ),
        )
    base = entry_view(schemes, entry).model_dump()
    return LibraryEntryDetail(
        **base,
        accounts=accounts,
        advisories_before=before,
        advisories_after=after,
        patched_build=build_view,
    )
