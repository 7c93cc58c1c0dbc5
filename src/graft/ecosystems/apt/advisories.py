"""What `graft.vulns` needs from Debian and Ubuntu: dpkg order, OSV release names ↔ codenames,
the install command (`rootio-X`, which always follows the patched build)."""

from __future__ import annotations

import re

from graft.ecosystems.apt import versions
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme

DEBIAN = {"11": "bullseye", "12": "bookworm", "13": "trixie", "14": "forky"}
UBUNTU = {
    "20.04": "focal",
    "22.04": "jammy",
    "24.04": "noble",
    "24.10": "oracular",
    "25.04": "plucky",
    "25.10": "questing",
}
_RELATION = re.compile(r"^\s*(<<|<=|>=|>>|=|<|>)\s*(\S+)\s*$")
_OPS = {"<<": {-1}, "<": {-1, 0}, "<=": {-1, 0}, "=": {0}, ">=": {0, 1}, ">": {0, 1}, ">>": {1}}


def in_relation(version: str, spec: str) -> bool:
    """dpkg relations joined by commas: `>= 7.88.1-10, << 7.88.1-11`."""
    for part in spec.split(","):
        m = _RELATION.match(part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not a dpkg relation such as '>= 1.2-1'")
        if versions.compare(version, m.group(2)) not in _OPS[m.group(1)]:
            return False
    return True


def _debian(suffix: str) -> str | None:
    return DEBIAN.get(suffix.split(":")[0])


def _ubuntu(suffix: str) -> str | None:
    parts = [p for p in suffix.split(":") if p != "LTS"]
    if len(parts) != 1:  # Ubuntu:Pro:…, FIPS streams: not what Graft serves
        return None
    return UBUNTU.get(parts[0])


def _osv_name(distro: str, table: dict[str, str], lts: bool) -> object:
    names = {codename: number for number, codename in table.items()}

    def name(codename: str) -> str:
        number = names.get(codename)
        if number is None:
            return distro
        suffix = ":LTS" if lts and number.endswith(".04") and int(number[:2]) % 2 == 0 else ""
        return f"{distro}:{number}{suffix}"

    return name


def schemes(settings: Settings) -> list[VersionScheme]:
    prefix = settings.os_package_prefix

    def install(pkg: str, ver: str, _dist: str) -> str:
        return f"apt-get install {prefix}{pkg}={ver}"

    out = []
    for eco, osv_name, table, dist, lts in (
        ("debian", "Debian", DEBIAN, _debian, False),
        ("ubuntu", "Ubuntu", UBUNTU, _ubuntu, True),
    ):
        out.append(
            VersionScheme(
                ecosystem=eco,
                osv_names=(osv_name,),
                sort_key=versions.sort_key,
                distribution=dist,
                install_command=install,
                native_range=in_relation,
                is_valid=versions.is_valid,
                osv_ecosystem=_osv_name(osv_name, table, lts),  # type: ignore[arg-type]
            )
        )
    return out
