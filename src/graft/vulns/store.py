"""Loading what matching needs, for many packages at once: advisories and patched builds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graft.db.models import Advisory, AdvisoryAffected, CatalogArtifact
from graft.vulns.matching import KnownAdvisory, PatchedBuild, known
from graft.vulns.schemes import VersionScheme

CHUNK = 400  # (ecosystem, package) pairs per IN list: well under SQLite's variable limit

Pair = tuple[str, str]
Triple = tuple[int, str, str]


def _chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def by_prefix(keys: Iterable[tuple[Any, ...]]) -> Iterable[tuple[tuple[Any, ...], list[str]]]:
    """(prefix, chunk of last elements): `a = x AND b IN (…)` uses a plain index on both
    backends, where a row-value IN list makes PostgreSQL scan the table."""
    grouped: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for key in sorted(set(keys)):
        grouped[key[:-1]].append(key[-1])
    for prefix, names in grouped.items():
        for chunk in _chunks(names):
            yield prefix, chunk


async def load_advisories(
    s: AsyncSession, schemes: dict[str, VersionScheme], pairs: Iterable[Pair]
) -> dict[Pair, list[KnownAdvisory]]:
    """Advisories (not withdrawn) naming each (ecosystem, package), compiled for matching."""
    out: dict[Pair, list[KnownAdvisory]] = defaultdict(list)
    for (ecosystem,), names in by_prefix(p for p in pairs if p[0] in schemes):
        rows = await s.execute(
            select(
                AdvisoryAffected.ecosystem,
                AdvisoryAffected.package,
                AdvisoryAffected.distribution,
                AdvisoryAffected.ranges,
                AdvisoryAffected.versions,
                Advisory.id,
                Advisory.osv_id,
                Advisory.aliases,
                Advisory.severity_level,
            )
            .join(Advisory, Advisory.id == AdvisoryAffected.advisory_id)
            .where(
                AdvisoryAffected.ecosystem == ecosystem,
                AdvisoryAffected.package.in_(names),
                Advisory.withdrawn.is_(None),
            )
            .order_by(Advisory.id)
        )
        for eco, pkg, dist, ranges, versions, adv_id, osv_id, aliases, level in rows:
            try:
                compiled = known(
                    schemes[eco], adv_id, osv_id, aliases or [], level, dist, ranges, versions
                )
            except Exception:  # a bound the ecosystem cannot read: the entry matches nothing
                continue
            out[(eco, pkg)].append(compiled)
    return out


def distribution_of(attrs: dict[str, Any]) -> str:
    """The distribution a patched OS build was published for (APT codename, Alpine release)."""
    return str(attrs.get("codename") or attrs.get("release") or "")


def builds_from(rows: Iterable[CatalogArtifact]) -> list[PatchedBuild]:
    grouped: dict[tuple[str, str], list[CatalogArtifact]] = defaultdict(list)
    for row in rows:
        if row.kind == "patched" and row.upstream_version:
            grouped[(row.version, distribution_of(row.attrs or {}))].append(row)
    builds = []
    for (version, dist), files in grouped.items():
        fixes: list[str] = []
        for f in files:
            fixes += [x for x in f.fixes or [] if x not in fixes]
        builds.append(
            PatchedBuild(
                version=version,
                upstream_version=str(files[0].upstream_version),
                distribution=dist,
                fixes=tuple(fixes),
                file_ids=tuple(f.id for f in files),
            )
        )
    return builds


async def load_builds(
    s: AsyncSession, triples: Iterable[Triple]
) -> dict[Triple, list[PatchedBuild]]:
    """Each organization's patched builds of each (ecosystem, package)."""
    rows_by: dict[Triple, list[CatalogArtifact]] = defaultdict(list)
    for (org_id, ecosystem), names in by_prefix(triples):
        rows = await s.scalars(
            select(CatalogArtifact).where(
                CatalogArtifact.org_id == org_id,
                CatalogArtifact.ecosystem == ecosystem,
                CatalogArtifact.package.in_(names),
                CatalogArtifact.kind == "patched",
            )
        )
        for row in rows:
            rows_by[(row.org_id, row.ecosystem, row.package)].append(row)
    return {key: builds_from(rows) for key, rows in rows_by.items()}
