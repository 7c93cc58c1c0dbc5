"""What `graft.vulns` needs from Maven: ComparableVersion order, version ranges, a command."""

from __future__ import annotations

from graft.ecosystems.maven import versions
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


def _in_range(version: str, spec: str) -> bool:
    try:
        return versions.parse_range(spec).contains(version)
    except ValueError as exc:
        raise ValueError(f"{spec!r} is not a Maven version range ({exc})") from None


def scheme(settings: Settings) -> VersionScheme:
    return VersionScheme(
        ecosystem="maven",
        osv_names=("Maven",),
        sort_key=versions.sort_key,
        install_command=lambda pkg, ver, _dist: f"mvn dependency:get -Dartifact={pkg}:{ver}",
        native_range=_in_range,
        osv_ecosystem=lambda _dist: "Maven",
    )
