"""APT repository index files: Packages (plain, .gz, .xz), Release with every index's hashes,
and the by-hash paths that let clients fetch an index while a new one is being published.

Deterministic output (sorted stanzas, gzip mtime 0) so that the same package set always gives
the same bytes, the same hashes and therefore cacheable, revalidatable files.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import lzma
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# The order dpkg and apt write fields in; unknown fields keep their given order after these.
FIELD_ORDER = (
    "Package", "Source", "Version", "Installed-Size", "Maintainer", "Architecture",
    "Multi-Arch", "Replaces", "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests",
    "Conflicts", "Breaks", "Description", "Homepage", "Section", "Priority", "Filename",
    "Size", "MD5sum", "SHA256",
)  # fmt: skip


def render_stanza(fields: Mapping[str, str]) -> str:
    known = [k for k in FIELD_ORDER if k in fields]
    rest = [k for k in fields if k not in FIELD_ORDER]
    lines = []
    for key in (*known, *rest):
        value = fields[key]
        if "\n" in value:  # multi-line fields (Description) keep their continuation lines
            first, *more = value.split("\n")
            lines.append(f"{key}: {first}")
            lines.extend(line if line.startswith(" ") else f" {line}" for line in more)
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def render_packages(stanzas: Iterable[Mapping[str, str]]) -> bytes:
    ordered = sorted(stanzas, key=lambda s: (s["Package"], s["Version"], s.get("Architecture", "")))
    return "\n".join(render_stanza(s) for s in ordered).encode()


def compressed_variants(path: str, data: bytes) -> dict[str, bytes]:
    """`path`, `path.gz` and `path.xz` with their contents."""
    return {
        path: data,
        f"{path}.gz": gzip.compress(data, compresslevel=6, mtime=0),
        f"{path}.xz": lzma.compress(data, preset=6),
    }


def by_hash_path(path: str, data: bytes) -> str:
    """`main/binary-amd64/Packages.xz` → `main/binary-amd64/by-hash/SHA256/<hex>`."""
    folder = path.rsplit("/", 1)[0]
    return f"{folder}/by-hash/SHA256/{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    origin: str
    label: str
    suite: str
    codename: str
    components: Sequence[str]
    architectures: Sequence[str]
    description: str = ""
    valid_for: dt.timedelta | None = None  # Valid-Until = Date + valid_for, when set


def _rfc2822(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")


def render_release(info: ReleaseInfo, files: Mapping[str, bytes], date: dt.datetime) -> bytes:
    """The Release file listing MD5Sum and SHA256 of every index, paths relative to dists/X."""
    head = [
        ("Origin", info.origin),
        ("Label", info.label),
        ("Suite", info.suite),
        ("Codename", info.codename),
        ("Date", _rfc2822(date)),
    ]
    if info.valid_for is not None:
        head.append(("Valid-Until", _rfc2822(date + info.valid_for)))
    head += [
        ("Architectures", " ".join(info.architectures)),
        ("Components", " ".join(info.components)),
        ("Acquire-By-Hash", "yes"),
    ]
    if info.description:
        head.append(("Description", info.description))
    lines = [f"{k}: {v}" for k, v in head]
    width = max((len(str(len(d))) for d in files.values()), default=1)
    for title, algo in (("MD5Sum", hashlib.md5), ("SHA256", hashlib.sha256)):
        lines.append(f"{title}:")
        for path in sorted(files):
            data = files[path]
            lines.append(f" {algo(data).hexdigest()} {len(data):>{width}} {path}")
    return ("\n".join(lines) + "\n").encode()
