"""What `graft.vulns` needs from npm: semver order and ranges, the install command (a patched
build is a prerelease, so it is installed by an exact pin or an override)."""

from __future__ import annotations

from graft.ecosystems.npm import versions
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


def _in_range(version: str, spec: str) -> bool:
    if versions.valid_range(spec) is None:
        raise ValueError(f"{spec!r} is not an npm semver range such as ^1.2.0")
    return versions.satisfies(version, spec, include_prerelease=True)


def scheme(settings: Settings) -> VersionScheme:
    return VersionScheme(
        ecosystem="npm",
        osv_names=("npm",),
        sort_key=versions.sort_key,
        install_command=lambda pkg, ver, _dist: f"npm install {pkg}@{ver}",
        native_range=_in_range,
        is_valid=lambda v: versions.valid(v) is not None,
        osv_ecosystem=lambda _dist: "npm",
    )
