"""Advisories for given versions of one package: what ecosystems' own audit channels answer
(npm audit's bulk endpoint, the PyPI JSON API's `vulnerabilities`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from graft.vulns.library import advisory_rows, advisory_view
from graft.vulns.matching import KnownAdvisory, PatchedBuild, affecting
from graft.vulns.models import AdvisoryMatch
from graft.vulns.ranges import describe
from graft.vulns.store import load_advisories, load_builds

if TYPE_CHECKING:
    from graft.vulns.service import VulnService


async def advisories_for(
    service: VulnService,
    org_id: int,
    ecosystem: str,
    package: str,
    versions: Iterable[str],
    distribution: str = "",
) -> dict[str, list[AdvisoryMatch]]:
    scheme = service.schemes.get(ecosystem)
    wanted = list(dict.fromkeys(versions))
    if scheme is None or not wanted:
        return {v: [] for v in wanted}
    package = scheme.normalize(package)
    key = (ecosystem, package)
    known: list[KnownAdvisory] | None = service.cached(key)
    async with service.db.session() as s:
        if known is None:
            known = (await load_advisories(s, service.schemes, [key])).get(key, [])
            service.remember(key, known)
        builds: list[PatchedBuild] = []
        if known:
            builds = (await load_builds(s, [(org_id, ecosystem, package)])).get(
                (org_id, ecosystem, package), []
            )
    out: dict[str, list[tuple[KnownAdvisory, tuple[str, ...]]]] = {}
    for version in wanted:
        build = next((b for b in builds if b.version == version), None)
        upstream = build.upstream_version if build is not None else version
        fixes = build.fixes if build is not None else ()
        out[version] = [(a, fixes) for a in affecting(scheme, upstream, distribution, known)]
    rows = await advisory_rows(service.db, {a.advisory_id for m in out.values() for a, _ in m})
    result: dict[str, list[AdvisoryMatch]] = {}
    for version, matches in out.items():
        result[version] = [
            AdvisoryMatch(
                advisory=advisory_view(rows[a.advisory_id], a, fixes),
                vulnerable_range=describe(a.ranges, []),
                fixed_by_patch=a.fixed_by(fixes),
                patched_versions=[b.version for b in builds if a.fixed_by(b.fixes)],
            )
            for a, fixes in matches
        ]
    return result
