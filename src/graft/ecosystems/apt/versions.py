"""Debian/Ubuntu (dpkg) version rules, and the patched-build marker `<upstream>.<label>.<N>`.

Ordering is python-debian's implementation of dpkg's algorithm (epochs, `~`, revisions).
"""

from __future__ import annotations

import functools
import re

from debian.debian_support import Version, version_compare

_VALID = re.compile(
    r"^(?:(?P<epoch>\d+):)?(?P<upstream>[0-9][A-Za-z0-9.+~:-]*?)(?:-(?P<revision>[A-Za-z0-9.+~]+))?$"
)


def compare(a: str, b: str) -> int:
    r = version_compare(a, b)
    return (r > 0) - (r < 0)


def is_valid(version: str) -> bool:
    """dpkg's rules for a version Graft publishes (strict: upstream starts with a digit)."""
    return bool(_VALID.match(version))


def patched_version(upstream: str, label: str, build: int) -> str:
    """`7.88.1-10+deb12u8` → `7.88.1-10+deb12u8.graft.1`: sorts right after the upstream."""
    return f"{upstream}.{label}.{build}"


def patch_marker(version: str, label: str) -> tuple[str, int] | None:
    """(upstream version, N) for `<upstream>.<label>.<N>`, else None."""
    m = re.fullmatch(rf"(?P<upstream>.+)\.{re.escape(label)}\.(?P<n>\d+)", version)
    if m is None or not is_valid(m.group("upstream")):
        return None
    return m.group("upstream"), int(m.group("n"))


sort_key = functools.cmp_to_key(compare)

__all__ = ["Version", "compare", "is_valid", "patch_marker", "patched_version", "sort_key"]
