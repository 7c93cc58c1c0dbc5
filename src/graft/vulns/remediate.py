"""`POST /api/remediate/<ecosystem>`: for each (name, version), the patched build to use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from graft.errors import InvalidInput
from graft.vulns.library import install_command
from graft.vulns.matching import best_build
from graft.vulns.models import RemediationItem, RemediationResult
from graft.vulns.store import load_advisories, load_builds

if TYPE_CHECKING:
    from graft.vulns.service import VulnService

MAX_PACKAGES = 5000


async def remediate(
    service: VulnService, org_id: int, ecosystem: str, packages: Sequence[tuple[str, str]]
) -> RemediationResult:
    scheme = service.schemes.get(ecosystem)
    if scheme is None:
        known = ", ".join(sorted(service.schemes))
        raise InvalidInput(f"unknown ecosystem {ecosystem!r}; known: {known}")
    if len(packages) > MAX_PACKAGES:
        raise InvalidInput(f"at most {MAX_PACKAGES} packages per request")
    names = [(scheme.normalize(n), n, v) for n, v in packages]
    async with service.db.session() as s:
        advisories = await load_advisories(
            s, service.schemes, {(ecosystem, n) for n, _, _ in names}
        )
        builds = await load_builds(s, {(org_id, ecosystem, n) for n, _, _ in names})
    from graft.vulns.matching import affecting

    items = []
    for norm, name, version in names:
        if scheme.is_valid is not None and not scheme.is_valid(version):
            items.append(
                RemediationItem(
                    name=name,
                    version=version,
                    result="unknown",
                    reason=f"{version!r} is not a {ecosystem} version",
                )
            )
            continue
        found = affecting(scheme, version, "", advisories.get((ecosystem, norm), []))
        ids = [a.osv_id for a in found]
        candidates = [
            b for b in builds.get((org_id, ecosystem, norm), []) if b.upstream_version == version
        ]
        build = best_build(scheme, candidates)
        if build is not None:
            unfixed = [a.osv_id for a in found if not a.fixed_by(build.fixes)]
            items.append(
                RemediationItem(
                    name=name,
                    version=version,
                    result="patched",
                    patched_version=build.version,
                    fixes=list(build.fixes),
                    advisories=ids,
                    unfixed=unfixed,
                    install_command=install_command(
                        service.schemes, ecosystem, norm, build.version, build.distribution
                    ),
                    reason="" if not unfixed else "the patched build leaves some advisories open",
                )
            )
        elif found:
            items.append(
                RemediationItem(
                    name=name,
                    version=version,
                    result="no patch",
                    advisories=ids,
                    unfixed=ids,
                    reason="no patched build of this version yet: submit a package request",
                )
            )
        else:
            items.append(
                RemediationItem(
                    name=name,
                    version=version,
                    result="not affected",
                    reason="no known advisory affects this version",
                )
            )
    return RemediationResult(ecosystem=ecosystem, packages=items)
