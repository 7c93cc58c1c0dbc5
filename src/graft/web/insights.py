"""Queries only the web pages need, over the status columns `graft.vulns` keeps on library
entries: the library table with ecosystem groups ("OS packages"), page numbers and counts per
ecosystem, and the dashboard's aggregates. Rows are turned into `graft.vulns`' own views
(`library.entry_view`), and verdicts come from `graft.vulns.status.entry_verdict`: nothing
about matching is decided here.

(`graft.vulns.library.list_entries` pages by cursor and filters one ecosystem; the table's
ecosystem group, page numbers and per-ecosystem counts are the web's, so they live here.)
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from graft.db import Database
from graft.db.models import Advisory, AdvisoryAffected, LibraryEntry, UsageDay, utcnow
from graft.vulns import library
from graft.vulns.models import STATUSES, LibraryEntryView
from graft.vulns.schemes import VersionScheme
from graft.vulns.status import entry_verdict
from graft.vulns.store import load_advisories, load_builds

OS_ECOSYSTEMS = ("debian", "ubuntu", "alpine")
#: the ecosystem filter: value, label; "os" is the group of OS package ecosystems
ECOSYSTEMS = (
    ("pypi", "PyPI"),
    ("npm", "npm"),
    ("maven", "Maven"),
    ("os", "OS packages"),
    ("debian", "Debian"),
    ("ubuntu", "Ubuntu"),
    ("alpine", "Alpine"),
    ("oci", "Images"),
)
ECOSYSTEM_LABELS = dict(ECOSYSTEMS)
SORTS: dict[str, tuple[Any, ...]] = {
    "package": (LibraryEntry.package, LibraryEntry.version),
    "ecosystem": (LibraryEntry.ecosystem, LibraryEntry.package),
    "version": (LibraryEntry.version,),
    "risk": (LibraryEntry.critical, LibraryEntry.high, LibraryEntry.severity),
    "status": (LibraryEntry.status,),
    "last_seen": (LibraryEntry.last_seen,),
    "count": (LibraryEntry.count,),
}
PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class LibraryFilter:
    ecosystem: str = ""  # one of ECOSYSTEMS' values, or "" for all
    status: str = ""  # one of graft.vulns STATUSES, or ""
    text: str = ""
    sort: str = "-risk"  # a SORTS key, "-" for descending
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> LibraryFilter:
        """From query parameters; anything unknown falls back to the default, never a 500."""
        eco = params.get("ecosystem", "")
        status = params.get("status", "")
        sort = params.get("sort", "-risk")
        try:
            page = max(1, min(int(params.get("page", "1")), 100_000))
        except ValueError:
            page = 1
        return cls(
            ecosystem=eco if eco in ECOSYSTEM_LABELS else "",
            status=status if status in STATUSES else "",
            text=params.get("q", "").strip()[:100],
            sort=sort if sort.lstrip("-") in SORTS else "-risk",
            page=page,
        )


@dataclass(frozen=True, slots=True)
class LibraryTable:
    rows: list[LibraryEntryView]
    total: int  # matching the filter
    pages: int
    counts: dict[str, int]  # per ecosystem (and "os"), for the other filters


def _where(org_id: int, f: LibraryFilter, *, ecosystem: bool = True) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [LibraryEntry.org_id == org_id]
    if ecosystem and f.ecosystem == "os":
        where.append(LibraryEntry.ecosystem.in_(OS_ECOSYSTEMS))
    elif ecosystem and f.ecosystem:
        where.append(LibraryEntry.ecosystem == f.ecosystem)
    if f.status:
        where.append(LibraryEntry.status == f.status)
    if f.text:
        where.append(func.lower(LibraryEntry.package).contains(f.text.lower(), autoescape=True))
    return where


async def library_table(
    db: Database, schemes: dict[str, VersionScheme], org_id: int, f: LibraryFilter
) -> LibraryTable:
    columns = SORTS[f.sort.lstrip("-")]
    desc = f.sort.startswith("-")
    order = [c.desc() if desc else c for c in columns]
    order.append(LibraryEntry.id.desc() if desc else LibraryEntry.id)
    async with db.session() as s:
        per_eco = dict(
            (
                await s.execute(
                    select(LibraryEntry.ecosystem, func.count())
                    .where(*_where(org_id, f, ecosystem=False))
                    .group_by(LibraryEntry.ecosystem)
                )
            ).all()
        )
        where = _where(org_id, f)
        total = int(
            (
                await s.execute(select(func.count()).select_from(LibraryEntry).where(*where))
            ).scalar_one()
        )
        pages = max(1, -(-total // PER_PAGE))
        page = min(f.page, pages)
        rows = list(
            await s.scalars(
                select(LibraryEntry)
                .where(*where)
                .order_by(*order)
                .offset((page - 1) * PER_PAGE)
                .limit(PER_PAGE)
            )
        )
    counts = {key: int(per_eco.get(key, 0)) for key, _ in ECOSYSTEMS if key != "os"}
    counts["os"] = sum(counts[e] for e in OS_ECOSYSTEMS)
    return LibraryTable(
        rows=[library.entry_view(schemes, r) for r in rows],
        total=total,
        pages=pages,
        counts=counts,
    )


# -- the dashboard ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dashboard:
    entries: int
    vulnerable: int  # entries with an unfixed advisory
    #: ecosystem -> (critical, high) unfixed advisories, counted per library entry
    open_by_ecosystem: list[tuple[str, int, int]]
    #: day -> share of installs served as patched builds (of patched + upstream + fallback)
    patched_share: list[tuple[dt.date, float, int]]
    #: the packages most installed as an upstream build or a rootio- fallback while one of
    #: their advisories is open: (label, fallback installs, upstream installs)
    exposed: list[tuple[str, int, int]]
    #: severity -> (days the oldest open advisory has been public, its id)
    oldest_open: list[tuple[str, int, str]]


async def dashboard(
    db: Database,
    schemes: dict[str, VersionScheme],
    org_id: int,
    *,
    days: int = 30,
    top: int = 10,
) -> Dashboard:
    today = utcnow().date()
    since = today - dt.timedelta(days=days - 1)
    async with db.session() as s:
        entries, vulnerable = (
            await s.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((LibraryEntry.advisories > 0, 1), else_=0)), 0),
                ).where(LibraryEntry.org_id == org_id)
            )
        ).one()
        by_eco = (
            await s.execute(
                select(
                    LibraryEntry.ecosystem,
                    func.sum(LibraryEntry.critical),
                    func.sum(LibraryEntry.high),
                )
                .where(LibraryEntry.org_id == org_id, LibraryEntry.advisories > 0)
                .group_by(LibraryEntry.ecosystem)
            )
        ).all()
        usage = (
            await s.execute(
                select(UsageDay.day, UsageDay.served, func.sum(UsageDay.count))
                .where(UsageDay.org_id == org_id, UsageDay.day >= since)
                .group_by(UsageDay.day, UsageDay.served)
            )
        ).all()
        exposed_rows = (
            await s.execute(
                select(
                    LibraryEntry.ecosystem,
                    LibraryEntry.package,
                    LibraryEntry.served,
                    func.sum(LibraryEntry.count),
                )
                .where(
                    LibraryEntry.org_id == org_id,
                    LibraryEntry.advisories > 0,
                    LibraryEntry.served.in_(("upstream", "fallback")),
                )
                .group_by(LibraryEntry.ecosystem, LibraryEntry.package, LibraryEntry.served)
            )
        ).all()
    open_by_ecosystem = sorted(
        ((ECOSYSTEM_LABELS.get(e, e), int(c or 0), int(h or 0)) for e, c, h in by_eco),
        key=lambda r: (-(r[1] + r[2]), r[0]),
    )
    open_by_ecosystem = [r for r in open_by_ecosystem if r[1] + r[2] > 0]

    per_day: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for day, served, n in usage:
        per_day[day][served] = int(n)
    share = []
    for day in sorted(per_day):
        got = per_day[day]
        installs = got.get("patched", 0) + got.get("upstream", 0) + got.get("fallback", 0)
        if installs:
            share.append((day, got.get("patched", 0) / installs, installs))

    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for eco, pkg, served, n in exposed_rows:
        totals[(eco, pkg)][0 if served == "fallback" else 1] += int(n)
    ranked = sorted(totals.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:top]
    exposed = [(f"{pkg} ({ECOSYSTEM_LABELS.get(eco, eco)})", f, u) for (eco, pkg), (f, u) in ranked]

    return Dashboard(
        entries=int(entries),
        vulnerable=int(vulnerable),
        open_by_ecosystem=open_by_ecosystem,
        patched_share=share,
        exposed=exposed,
        oldest_open=await oldest_open(db, schemes, org_id),
    )


async def oldest_open(
    db: Database, schemes: dict[str, VersionScheme], org_id: int
) -> list[tuple[str, int, str]]:
    """Per severity: how long the oldest advisory still open in the organization's library
    has been public. Open = unfixed for an entry in use, by `graft.vulns`' own verdict.

    Candidates (advisories naming a package that has an open advisory) are walked oldest
    first and verified package by package, so a typical dashboard matches a few packages,
    not every vulnerable entry of the library."""
    affected = AdvisoryAffected
    vulnerable = (
        select(LibraryEntry.id)
        .where(
            LibraryEntry.org_id == org_id,
            LibraryEntry.advisories > 0,
            LibraryEntry.ecosystem == affected.ecosystem,
            # OS entries are named by their source package in advisories
            or_(
                LibraryEntry.package == affected.package,
                LibraryEntry.source == affected.package,
            ),
        )
        .exists()
    )
    since = func.coalesce(Advisory.published, Advisory.modified)
    found: dict[str, tuple[dt.datetime, str]] = {}
    open_in: dict[tuple[str, str], set[int]] = {}
    async with db.session() as s:
        candidates = (
            await s.execute(
                select(
                    Advisory.id,
                    Advisory.osv_id,
                    Advisory.severity_level,
                    since,
                    affected.ecosystem,
                    affected.package,
                )
                .join(affected, affected.advisory_id == Advisory.id)
                .where(Advisory.withdrawn.is_(None), vulnerable)
                .order_by(since, Advisory.id)
            )
        ).all()
        for adv_id, osv_id, level, when, eco, pkg in candidates:
            if level in found:
                continue
            if (eco, pkg) not in open_in:
                open_in[(eco, pkg)] = await _open_advisories(s, schemes, org_id, eco, pkg)
            if adv_id in open_in[(eco, pkg)]:
                found[level] = (when, osv_id)
    now = utcnow()
    order = ("critical", "high", "medium", "low", "unknown")
    return [
        (level, max(0, (now - found[level][0]).days), found[level][1])
        for level in order
        if level in found
    ]


async def _open_advisories(
    s: AsyncSession, schemes: dict[str, VersionScheme], org_id: int, eco: str, pkg: str
) -> set[int]:
    """Ids of the advisories open for any of the organization's entries of one package."""
    entries = (
        await s.execute(
            select(
                LibraryEntry.org_id,
                LibraryEntry.ecosystem,
                LibraryEntry.distribution,
                LibraryEntry.package,
                LibraryEntry.version,
                LibraryEntry.served,
                LibraryEntry.source,
                LibraryEntry.source_version,
            ).where(
                LibraryEntry.org_id == org_id,
                LibraryEntry.ecosystem == eco,
                or_(LibraryEntry.package == pkg, LibraryEntry.source == pkg),
                LibraryEntry.advisories > 0,
            )
        )
    ).all()
    advisories = await load_advisories(s, schemes, [(eco, pkg)])
    builds = await load_builds(s, [(org_id, eco, pkg)])
    return {
        a.advisory_id
        for e in entries
        for a in entry_verdict(schemes, e, advisories, builds).unfixed
    }
