"""Token scopes. Each scope implies the ones below it: admin ⊃ publish ⊃ read."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class Scope(StrEnum):
    READ = "read"
    PUBLISH = "publish"
    ADMIN = "admin"


_RANK = {Scope.READ: 1, Scope.PUBLISH: 2, Scope.ADMIN: 3}


def parse_scopes(values: str | Sequence[str]) -> frozenset[Scope]:
    items = values.replace(",", " ").split() if isinstance(values, str) else list(values)
    if not items:
        raise ValueError("at least one scope is needed (read, publish or admin)")
    out = set()
    for item in items:
        try:
            out.add(Scope(item.strip().lower()))
        except ValueError:
            raise ValueError(f"unknown scope {item!r}: use read, publish or admin") from None
    return frozenset(out)


def expand(scopes: frozenset[Scope]) -> frozenset[Scope]:
    """The scopes granted, with the implied lower ones included."""
    top = max((_RANK[s] for s in scopes), default=0)
    return frozenset(s for s, rank in _RANK.items() if rank <= top)


def serialize(scopes: frozenset[Scope]) -> str:
    return " ".join(sorted((s.value for s in scopes), key=lambda v: _RANK[Scope(v)]))
