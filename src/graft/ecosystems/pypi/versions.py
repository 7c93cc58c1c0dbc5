"""PEP 440 version rules, and the patched-build marker `<upstream>+<label>.<N>`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version


def parse(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def sort_key(version: str) -> tuple[int, Version | str]:
    """PEP 440 order; versions that do not parse sort first, by their text."""
    parsed = parse(version)
    return (1, parsed) if parsed is not None else (0, version)


@dataclass(frozen=True, slots=True)
class PatchMarker:
    upstream: str  # the public version it patches, e.g. "2.31.0"
    build: int  # N in +label.N


def patch_marker(version: Version, label: str) -> PatchMarker | None:
    """`2.31.0+graft.3` → (2.31.0, 3); None when the version has no local part.

    packaging normalizes `+GRAFT-3` and `+graft_3` to `graft.3`, so every spelling is accepted.
    Raises ValueError for a local part that is not `<label>.<N>`.
    """
    if version.local is None:
        return None
    m = re.fullmatch(rf"{re.escape(label)}\.(\d+)", version.local)
    if m is None:
        raise ValueError(
            f"local version '+{version.local}' is not a patched-build marker: "
            f"use <upstream version>+{label}.<N>, e.g. {version.public}+{label}.1"
        )
    return PatchMarker(upstream=version.public, build=int(m.group(1)))
