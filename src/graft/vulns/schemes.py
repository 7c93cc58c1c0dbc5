"""What `graft.vulns` needs from an ecosystem: its version order, names and install commands.

The core never imports an ecosystem: an ecosystem that knows about advisories offers
`version_schemes(settings)` (see `VersionAware`), and `graft.server` / the CLI hand the schemes
of the registered ecosystems to `VulnService`. One ecosystem package may offer several schemes: APT
serves `debian` and `ubuntu`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from graft.settings import Settings


def _same(text: str) -> str:
    return text


def _no_distribution(suffix: str) -> str | None:
    return ""


@dataclass(frozen=True, slots=True)
class VersionScheme:
    #: the library's ecosystem name: what usage events and the catalog call it ("pypi", "debian")
    ecosystem: str
    #: OSV ecosystem names, the part before any ':' ("PyPI"; "Debian" for "Debian:12")
    osv_names: tuple[str, ...]
    #: orders versions as the ecosystem's clients do (any comparable key)
    sort_key: Callable[[str], Any]
    #: the library's spelling of a package name as OSV gives it (PEP 503 for PyPI …)
    normalize: Callable[[str], str] = _same
    #: OSV's suffix after the first ':' ("12", "22.04:LTS", "v3.20") → the library's
    #: distribution ("bookworm", "jammy", "3.20"); None: a release Graft does not serve
    distribution: Callable[[str], str | None] = _no_distribution
    #: (package, version, distribution) → the command that installs that build
    install_command: Callable[[str, str, str], str] | None = None
    #: (version, native range) → inside? for `graft version match` ("^1.2", "[1.0,2.0)")
    native_range: Callable[[str, str], bool] | None = None
    #: (version) → valid in this ecosystem? for clear errors in the version tools
    is_valid: Callable[[str], bool] | None = None
    #: the OSV ecosystem name Graft's own feed uses for a distribution ("Debian:12")
    osv_ecosystem: Callable[[str], str] | None = None

    def compare(self, a: str, b: str) -> int:
        ka, kb = self.sort_key(a), self.sort_key(b)
        return int(ka > kb) - int(ka < kb)


@runtime_checkable
class VersionAware(Protocol):
    def version_schemes(self, settings: Settings) -> Sequence[VersionScheme]: ...


def collect(ecosystems: Iterable[object], settings: Settings) -> dict[str, VersionScheme]:
    """The schemes of the ecosystems that offer them, by library ecosystem name."""
    found: dict[str, VersionScheme] = {}
    for eco in ecosystems:
        if isinstance(eco, VersionAware):
            for scheme in eco.version_schemes(settings):
                found[scheme.ecosystem] = scheme
    return found


def by_osv_name(schemes: dict[str, VersionScheme]) -> dict[str, VersionScheme]:
    return {name: s for s in schemes.values() for name in s.osv_names}
