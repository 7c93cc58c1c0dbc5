"""What `graft.vulns` needs from Alpine: apk order, `Alpine:v3.20` ↔ release `3.20`, the
install command (`rootio-X`, which always follows the patched build)."""

from __future__ import annotations

import re

from graft.ecosystems.apk import versions
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme

_CONSTRAINT = re.compile(r"^\s*(!?[<>=~]{1,2})\s*(\S+)\s*$")


def in_constraint(version: str, spec: str) -> bool:
    """apk constraints joined by commas: `>=8.9.1-r0, <8.9.1-r2`, `~8.9`."""
    for part in spec.split(","):
        m = _CONSTRAINT.match(part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not an apk constraint such as '<8.9.1-r2'")
        if not versions.matches(version, m.group(1), m.group(2)):
            return False
    return True


def _release(suffix: str) -> str | None:
    m = re.fullmatch(r"v(\d+\.\d+)", suffix)
    return m.group(1) if m else None


def scheme(settings: Settings) -> VersionScheme:
    prefix = settings.os_package_prefix
    return VersionScheme(
        ecosystem="alpine",
        osv_names=("Alpine",),
        sort_key=versions.sort_key,
        distribution=_release,
        install_command=lambda pkg, ver, _dist: f"apk add {prefix}{pkg}={ver}",
        native_range=in_constraint,
        is_valid=versions.is_valid,
        osv_ecosystem=lambda dist: f"Alpine:v{dist}" if dist else "Alpine",
    )
