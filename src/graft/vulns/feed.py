"""Graft's own OSV feed: one record per patched build of the organization.

Each record says the upstream version is affected by the CVEs the build fixes and that the
build's version fixes them, so scanners that read OSV recognise the patched build:
`GRAFT-<ecosystem>-<package>-<version>` with `aliases` = the fixed advisories and an
ECOSYSTEM range `introduced: <upstream>`, `fixed: <patched>`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from graft.db.models import CatalogArtifact
from graft.errors import NotFound
from graft.vulns.matching import PatchedBuild
from graft.vulns.schemes import VersionScheme
from graft.vulns.store import builds_from

if TYPE_CHECKING:
    from graft.vulns.service import VulnService

_UNSAFE = re.compile(r"[^A-Za-z0-9._~+-]+")


def feed_id(ecosystem: str, package: str, version: str, distribution: str) -> str:
    parts = [ecosystem, *([distribution] if distribution else []), package, version]
    return "GRAFT-" + "-".join(_UNSAFE.sub("_", p) for p in parts)


def affected(
    scheme: VersionScheme | None, osv_eco: str, package: str, build: PatchedBuild
) -> dict[str, Any]:
    """The upstream version is affected; the patched build fixes it. Where the ecosystem sorts
    the build after its upstream (PEP 440 local versions, dpkg, apk, Maven), that is a range
    `introduced: upstream, fixed: build`; npm sorts a `-graft.N` prerelease before its
    upstream, so there only the explicit `versions` list says it."""
    entry: dict[str, Any] = {
        "package": {"ecosystem": osv_eco, "name": package},
        "versions": [build.upstream_version],
        "database_specific": {"patched_build": build.version},
    }
    if scheme is not None and scheme.compare(build.version, build.upstream_version) > 0:
        events = [{"introduced": build.upstream_version}, {"fixed": build.version}]
        entry["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
    return entry


async def records(service: VulnService, org_id: int) -> list[dict[str, Any]]:
    async with service.db.session() as s:
        rows = list(
            await s.scalars(
                select(CatalogArtifact)
                .where(CatalogArtifact.org_id == org_id, CatalogArtifact.kind == "patched")
                .order_by(CatalogArtifact.id)
            )
        )
    by_package: dict[tuple[str, str], list[CatalogArtifact]] = {}
    for row in rows:
        by_package.setdefault((row.ecosystem, row.package), []).append(row)
    out = []
    for (ecosystem, package), files in by_package.items():
        scheme = service.schemes.get(ecosystem)
        created = {f.version: f.created_at for f in files}
        for build in builds_from(files):
            if not build.fixes:
                continue
            osv_eco = (
                scheme.osv_ecosystem(build.distribution)
                if scheme and scheme.osv_ecosystem
                else ecosystem
            )
            when = created[build.version].strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(
                {
                    "schema_version": "1.6.0",
                    "id": feed_id(ecosystem, package, build.version, build.distribution),
                    "modified": when,
                    "published": when,
                    "aliases": list(build.fixes),
                    "summary": f"{package} {build.version} fixes {', '.join(build.fixes)}",
                    "affected": [affected(scheme, osv_eco, package, build)],
                }
            )
    return out


async def record(service: VulnService, org_id: int, osv_id: str) -> dict[str, Any]:
    for rec in await records(service, org_id):
        if rec["id"] == osv_id:
            return rec
    raise NotFound(f"{osv_id} is not in this organization's feed")
