"""The verdict for one installed version: which advisories affect it, whether the
organization has a patched build, and what stays open with it. Pure: no database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graft.vulns.models import LEVELS, Status, level_rank
from graft.vulns.ranges import Matcher, compile_affected
from graft.vulns.schemes import VersionScheme


@dataclass(frozen=True, slots=True)
class KnownAdvisory:
    """An advisory's affected entry for one package, compiled for matching."""

    advisory_id: int
    osv_id: str
    aliases: tuple[str, ...]
    level: str
    distribution: str
    matcher: Matcher
    ranges: tuple[dict[str, Any], ...] = field(compare=False)

    def fixed_by(self, fixes: Iterable[str]) -> bool:
        wanted = set(fixes)
        return self.osv_id in wanted or any(a in wanted for a in self.aliases)


def known(
    scheme: VersionScheme,
    advisory_id: int,
    osv_id: str,
    aliases: Sequence[str],
    level: str,
    distribution: str,
    ranges: Sequence[dict[str, Any]],
    versions: Sequence[str],
) -> KnownAdvisory:
    return KnownAdvisory(
        advisory_id,
        osv_id,
        tuple(aliases),
        level,
        distribution,
        compile_affected(scheme, ranges, versions),
        tuple(ranges),
    )


@dataclass(frozen=True, slots=True)
class PatchedBuild:
    """The organization's patched build of one upstream version (all its files)."""

    version: str
    upstream_version: str
    distribution: str  # "" where the ecosystem has none
    fixes: tuple[str, ...]
    file_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    before: tuple[KnownAdvisory, ...]  # affecting the upstream version
    after: tuple[KnownAdvisory, ...] | None  # still open with the patched build
    patched: PatchedBuild | None

    @property
    def unfixed(self) -> tuple[KnownAdvisory, ...]:
        return self.before if self.status != "patched in use" else (self.after or ())

    def columns(self) -> dict[str, Any]:
        open_ = self.unfixed
        return {
            "status": self.status,
            "critical": sum(a.level == "critical" for a in open_),
            "high": sum(a.level == "high" for a in open_),
            "severity": max((level_rank(a.level) for a in open_), default=0),
            "advisories": len(open_),
            "patched_version": self.patched.version if self.patched else None,
        }


def affecting(
    scheme: VersionScheme | None,
    version: str,
    distribution: str,
    advisories: Sequence[KnownAdvisory],
) -> tuple[KnownAdvisory, ...]:
    if scheme is None or not advisories:
        return ()
    try:
        key = scheme.sort_key(version)
    except Exception:  # a version the ecosystem cannot read matches no range
        return ()
    seen: dict[int, KnownAdvisory] = {}
    for adv in advisories:
        if adv.advisory_id in seen or (adv.distribution and adv.distribution != distribution):
            continue
        try:
            if adv.matcher.affects(key, version):
                seen[adv.advisory_id] = adv
        except TypeError:  # keys that cannot be compared (an invalid bound): no match
            continue
    return tuple(seen.values())


def best_build(scheme: VersionScheme | None, builds: Sequence[PatchedBuild]) -> PatchedBuild | None:
    if not builds:
        return None
    if scheme is None:
        return builds[-1]
    return max(builds, key=lambda b: scheme.sort_key(b.version))


def verdict(
    scheme: VersionScheme | None,
    *,
    version: str,
    distribution: str,
    served: str,
    advisories: Sequence[KnownAdvisory],
    builds_of_upstream: Sequence[PatchedBuild],
    build_in_use: PatchedBuild | None,
) -> Verdict:
    """`builds_of_upstream`: the organization's patched builds of `version` (when it is an
    upstream version); `build_in_use`: the build `version` is (when served is `patched`)."""
    if served == "private":
        return Verdict("not affected", (), None, None)
    if served == "patched" and build_in_use is not None:
        before = affecting(scheme, build_in_use.upstream_version, distribution, advisories)
        after = tuple(a for a in before if not a.fixed_by(build_in_use.fixes))
        return Verdict("patched in use", before, after, build_in_use)
    before = affecting(scheme, version, distribution, advisories)
    build = best_build(scheme, builds_of_upstream)
    if not before:
        return Verdict("not affected", (), None, build)
    if build is not None:
        left = tuple(a for a in before if not a.fixed_by(build.fixes))
        return Verdict("patched available", before, left, build)
    return Verdict("no patch available", before, None, None)


__all__ = ["LEVELS", "KnownAdvisory", "PatchedBuild", "Verdict", "affecting", "known", "verdict"]
