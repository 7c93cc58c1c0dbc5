"""What `graft.vulns` needs from PyPI: PEP 440 order, PEP 503 names, pip's install command."""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from graft.ecosystems.pypi import versions
from graft.ecosystems.pypi.dists import normalize
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


def _in_specifier(version: str, spec: str) -> bool:
    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except InvalidSpecifier:
        raise ValueError(f"{spec!r} is not a PEP 440 version specifier such as >=1.0,<2") from None


def scheme(settings: Settings) -> VersionScheme:
    return VersionScheme(
        ecosystem="pypi",
        osv_names=("PyPI",),
        sort_key=versions.sort_key,
        normalize=normalize,
        install_command=lambda pkg, ver, _dist: f'pip install "{pkg}=={ver}"',
        native_range=_in_specifier,
        is_valid=lambda v: versions.parse(v) is not None,
        osv_ecosystem=lambda _dist: "PyPI",
    )
