"""The registration list: one line per ecosystem package.

Each package `graft.ecosystems.<name>` exposes `ECOSYSTEM`, an object implementing
`graft.ecosystems.base.Ecosystem`.
"""

from __future__ import annotations

import importlib

from graft.ecosystems.base import Ecosystem, PublishResult

MODULES: tuple[str, ...] = (
    "graft.ecosystems.pypi",
    "graft.ecosystems.apt",
    "graft.ecosystems.apk",
    "graft.ecosystems.maven",
    "graft.ecosystems.oci",
    "graft.ecosystems.npm",
)


def check(ecosystems: list[Ecosystem]) -> list[Ecosystem]:
    """Reject an ecosystem that does not implement the interface or clashes with another."""
    names: set[str] = set()
    prefixes: set[str] = set()
    for eco in ecosystems:
        if not isinstance(eco, Ecosystem):
            raise TypeError(f"{eco!r} does not implement the Ecosystem interface")
        clash = prefixes.intersection(eco.prefixes)
        if eco.name in names or clash:
            raise ValueError(f"ecosystem {eco.name!r} clashes on {sorted(clash) or 'its name'}")
        names.add(eco.name)
        prefixes.update(eco.prefixes)
    return ecosystems


def load(modules: tuple[str, ...] = MODULES) -> list[Ecosystem]:
    return check([importlib.import_module(m).ECOSYSTEM for m in modules])


__all__ = ["MODULES", "Ecosystem", "PublishResult", "check", "load"]
