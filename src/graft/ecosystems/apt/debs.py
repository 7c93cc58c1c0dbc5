"""Reading and writing `.deb` files: an `ar` archive of `debian-binary`, `control.tar.*` and
`data.tar.*`.

Graft needs three things no library offers in this shape: read a package's control fields
without unpacking it, re-emit the same payload under a new name (`rootio-<name>`, with
Provides/Replaces/Conflicts) by swapping only the control member, and build the tiny
transitional `rootio-X` packages. Output is deterministic (fixed mtimes, owners and order), so
the same inputs always give the same bytes and the same SHA256.
"""

from __future__ import annotations

import functools
import gzip
import io
import lzma
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass

import zstandard

from graft.ecosystems.apt.index import render_stanza
from graft.errors import InvalidInput

AR_MAGIC = b"!<arch>\n"
MAX_CONTROL_BYTES = 4 << 20
EPOCH = 0  # mtime of every member Graft writes: reproducible bytes


@dataclass(frozen=True, slots=True)
class ArMember:
    name: str
    data: bytes


_DEBIAN_BINARY = ArMember("debian-binary", b"2.0\n")


def read_ar(blob: bytes) -> list[ArMember]:
    if not blob.startswith(AR_MAGIC):
        raise InvalidInput("not a Debian package: no ar archive header")
    members = []
    pos = len(AR_MAGIC)
    while pos < len(blob):
        header = blob[pos : pos + 60]
        if len(header) < 60 or header[58:60] != b"`\n":
            raise InvalidInput("not a Debian package: damaged ar member header")
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise InvalidInput("not a Debian package: bad ar member size") from None
        start = pos + 60
        if start + size > len(blob):
            raise InvalidInput("not a Debian package: truncated ar member")
        members.append(ArMember(name, blob[start : start + size]))
        pos = start + size + (size % 2)
    return members


def _ar_header(name: str, size: int) -> bytes:
    if len(name) > 16:
        raise ValueError(f"ar member name too long: {name}")
    return f"{name:<16}{EPOCH:<12}{0:<6}{0:<6}{'100644':<8}{size:<10}`\n".encode("ascii")


def _ar_member(m: ArMember) -> bytes:
    return _ar_header(m.name, len(m.data)) + m.data + (b"\n" if len(m.data) % 2 else b"")


def write_ar(members: list[ArMember]) -> bytes:
    return AR_MAGIC + b"".join(_ar_member(m) for m in members)


def _decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if name.endswith(".tar"):
        return data
    raise InvalidInput(f"unsupported compression in {name}")


def parse_control(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    last = ""
    for line in text.split("\n"):
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t":
            if not last:
                raise InvalidInput("malformed control file: continuation before any field")
            fields[last] += "\n" + line
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            raise InvalidInput(f"malformed control file line: {line[:80]!r}")
        last = key
        fields[key] = value.strip()
    for required in ("Package", "Version", "Architecture"):
        if required not in fields:
            raise InvalidInput(f"control file has no {required} field")
    return fields


@dataclass(frozen=True, slots=True)
class DebPackage:
    control: dict[str, str]
    members: list[ArMember]

    @property
    def name(self) -> str:
        return self.control["Package"]

    @property
    def version(self) -> str:
        return self.control["Version"]

    @property
    def architecture(self) -> str:
        return self.control["Architecture"]


def read_deb(blob: bytes) -> DebPackage:
    members = read_ar(blob)
    names = [m.name for m in members]
    if not names or names[0] != "debian-binary" or not members[0].data.startswith(b"2."):
        raise InvalidInput("not a Debian package: debian-binary 2.x must come first")
    control_member = next((m for m in members if m.name.startswith("control.tar")), None)
    if control_member is None or not any(n.startswith("data.tar") for n in names):
        raise InvalidInput("not a Debian package: control.tar and data.tar are required")
    raw = _decompress(control_member.name, control_member.data)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            for info in tf:
                if info.name in ("./control", "control") and info.isfile():
                    if info.size > MAX_CONTROL_BYTES:
                        raise InvalidInput("control file too large")
                    fh = tf.extractfile(info)
                    assert fh is not None
                    text = fh.read().decode("utf-8")
                    return DebPackage(parse_control(text), members)
    except (tarfile.TarError, UnicodeDecodeError, EOFError):
        raise InvalidInput("not a Debian package: unreadable control.tar") from None
    raise InvalidInput("not a Debian package: control.tar has no control file")


def _tar_header(name: str, size: int, mode: int, typeflag: bytes) -> bytes:
    """A ustar header (root:root, mtime EPOCH). Written by hand: `tarfile` costs ~20x more,
    and the APT fallbacks build one small package per upstream package (tens of thousands)."""
    raw = name.encode()
    if len(raw) > 100:
        raise ValueError(f"tar member name too long: {name}")
    header = bytearray(512)
    header[0 : len(raw)] = raw
    header[100:108] = b"%07o\0" % mode
    header[108:116] = b"0000000\0"  # uid
    header[116:124] = b"0000000\0"  # gid
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % EPOCH
    header[148:156] = b" " * 8  # checksum field counts as spaces while summing
    header[156:157] = typeflag
    header[257:265] = b"ustar\x0000"
    header[265:269] = b"root"
    header[297:301] = b"root"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _tar(files: Mapping[str, bytes], dirs: tuple[str, ...] = ("./",)) -> bytes:
    out = [_tar_header(d, 0, 0o755, b"5") for d in dirs]
    for name in sorted(files):
        data = files[name]
        out.append(_tar_header(name, len(data), 0o644, b"0"))
        out.append(data)
        if len(data) % 512:
            out.append(bytes(512 - len(data) % 512))
    out.append(bytes(1024))  # end-of-archive marker: two zero blocks
    return b"".join(out)


def _control_member(
    fields: Mapping[str, str], extra: Mapping[str, bytes] | None = None
) -> ArMember:
    files = {"./control": render_stanza(fields).encode(), **(extra or {})}
    return ArMember("control.tar.gz", gzip.compress(_tar(files), compresslevel=9, mtime=0))


def with_control(deb: DebPackage, fields: Mapping[str, str]) -> bytes:
    """The same package payload (data.tar untouched) with new control fields."""
    members = [
        _control_member(fields) if m.name.startswith("control.tar") else m for m in deb.members
    ]
    return write_ar(members)


def build_deb(fields: Mapping[str, str], data_files: Mapping[str, bytes] | None = None) -> bytes:
    """A package from control fields and files (paths like `./usr/share/doc/x/README`)."""
    files = dict(data_files or {})
    dirs = {"./"}
    for path in files:
        parts = path.split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("./" + "/".join(parts[:i]) + "/")
    data = _tar(files, tuple(sorted(dirs)))
    return write_ar(
        [
            _DEBIAN_BINARY,
            _control_member(fields),
            ArMember("data.tar.gz", gzip.compress(data, compresslevel=9, mtime=0)),
        ]
    )


def rootio_fields(control: Mapping[str, str], prefix: str, upstream_version: str) -> dict[str, str]:
    """Control fields of the `rootio-<name>` copy of a patched build: it provides the original
    name at the upstream version (so versioned dependencies of others stay satisfied), and
    replaces and conflicts with it (so dpkg swaps them without --force-overwrite)."""
    name = control["Package"]
    fields = dict(control)
    fields["Package"] = f"{prefix}{name}"
    provides = [p.strip() for p in control.get("Provides", "").split(",") if p.strip()]
    fields["Provides"] = ", ".join([f"{name} (= {upstream_version})", *provides])
    fields["Replaces"] = ", ".join(x for x in (name, control.get("Replaces", "")) if x)
    fields["Conflicts"] = ", ".join(x for x in (name, control.get("Conflicts", "")) if x)
    fields.pop("Multi-Arch", None)  # conflicts with itself across architectures otherwise
    return fields


@functools.cache
def _transitional_template() -> tuple[bytes, bytes, bytes]:
    """What every transitional package shares: the ar head with `debian-binary`, the `./`
    entry of control.tar, and the data member (no files). Built once."""
    data = ArMember("data.tar.gz", gzip.compress(_tar({}), compresslevel=9, mtime=0))
    head = AR_MAGIC + _ar_member(_DEBIAN_BINARY)
    return head, _tar_header("./", 0, 0o755, b"5"), _ar_member(data)


def transitional_deb(name: str, version: str, architecture: str, prefix: str) -> bytes:
    """`rootio-X`: depends on exactly upstream X, so installing it always works and upgrades to
    the patched build the day one is published. The repository lists one per upstream package,
    so this is assembled from a template: only the control file differs."""
    fields = {
        "Package": f"{prefix}{name}",
        "Version": version,
        "Architecture": architecture,
        "Maintainer": "Graft <graft@localhost>",
        "Installed-Size": "1",
        "Depends": f"{name} (= {version})",
        "Section": "oldlibs",
        "Priority": "optional",
        "Description": f"transitional package for {name}\n"
        f" No patched build of {name} {version} exists yet; this package installs the\n"
        f" upstream {name} and is replaced by the patched build when one is published.",
    }
    head, root_entry, data_member = _transitional_template()
    text = render_stanza(fields).encode()
    control = b"".join(
        (
            root_entry,
            _tar_header("./control", len(text), 0o644, b"0"),
            text,
            bytes(-len(text) % 512),
            bytes(1024),  # end-of-archive marker
        )
    )
    # control.tar uncompressed: dpkg reads it since 1.17.6, and gzip costs more than the rest
    return head + _ar_member(ArMember("control.tar", control)) + data_member
