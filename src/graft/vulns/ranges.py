"""Is a version inside an OSV `affected` entry? Evaluated with the ecosystem's own order.

The OSV rule: walk a range's events in version order; `introduced` (at or below the version)
turns the state on, `fixed` (at or below) and `last_affected` (below) turn it off; a `limit`
at or below the version excludes it. `SEMVER` ranges use the ecosystem's order as well (npm's is
semver; other ecosystems rarely carry them). An explicit `versions` list also matches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graft.vulns.schemes import VersionScheme

_ZERO = object()  # `introduced: "0"`: below every version


@dataclass(frozen=True, slots=True)
class CompiledRange:
    events: tuple[tuple[str, Any], ...]  # (kind, sort key or _ZERO), in version order
    limits: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Matcher:
    ranges: tuple[CompiledRange, ...]
    versions: frozenset[str]

    def affects(self, key: Any, version: str) -> bool:
        if version in self.versions:
            return True
        for rng in self.ranges:
            if any(key >= limit for limit in rng.limits):
                continue
            inside = False
            for kind, ekey in rng.events:
                if kind == "introduced":
                    if ekey is _ZERO or key >= ekey:
                        inside = True
                elif kind == "fixed":
                    if key >= ekey:
                        inside = False
                elif key > ekey:  # last_affected
                    inside = False
            if inside:
                return True
        return False


def _order(item: tuple[str, Any]) -> tuple[int, Any]:
    return (0, 0) if item[1] is _ZERO else (1, item[1])


def compile_affected(
    scheme: VersionScheme, ranges: Sequence[dict[str, Any]], versions: Sequence[str]
) -> Matcher:
    compiled = []
    for rng in ranges:
        events: list[tuple[str, Any]] = []
        limits: list[Any] = []
        for event in rng.get("events", ()):
            ((kind, version),) = event.items()
            if kind == "limit":
                if version != "*":
                    limits.append(scheme.sort_key(version))
                continue
            key = _ZERO if kind == "introduced" and version == "0" else scheme.sort_key(version)
            events.append((kind, key))
        # keys of different shapes (an invalid version): keep the record's order
        with contextlib.suppress(TypeError):
            events.sort(key=_order)
        compiled.append(CompiledRange(tuple(events), tuple(limits)))
    return Matcher(tuple(compiled), frozenset(versions))


def affects(
    scheme: VersionScheme, version: str, ranges: Sequence[dict[str, Any]], versions: Sequence[str]
) -> bool:
    return compile_affected(scheme, ranges, versions).affects(scheme.sort_key(version), version)


def fixed_versions(ranges: Sequence[dict[str, Any]]) -> list[str]:
    return [v for r in ranges for e in r.get("events", ()) for k, v in e.items() if k == "fixed"]


def describe(ranges: Sequence[dict[str, Any]], versions: Sequence[str]) -> str:
    """A human range such as `>=1.0.0 <1.2.3 || <=0.9.1` (npm audit prints one)."""
    parts = []
    for rng in ranges:
        low: str | None = None
        for event in rng.get("events", ()):
            ((kind, version),) = event.items()
            if kind == "introduced":
                low = ">=0.0.0" if version == "0" else f">={version}"
            elif kind in ("fixed", "last_affected") and low is not None:
                op = "<" if kind == "fixed" else "<="
                parts.append(f"{low} {op}{version}" if low != ">=0.0.0" else f"{op}{version}")
                low = None
        if low is not None:
            parts.append(low if low != ">=0.0.0" else "*")
    parts += versions[:20]
    return " || ".join(parts) or "*"
