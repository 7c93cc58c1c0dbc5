"""Reading and writing `.deb` files: an `ar` archive of `debian-binary`, `control.tar.*` and
`data.tar.*`.

Graft needs three things no library offers in this shape: read a package's control fields
without unpacking it, re-emit the same payload under a new name (`rootio-<name>`, with
Provides/Replaces/Conflicts) by swapping only the control member, and build the tiny
transitional `rootio-X` packages. Output is deterministic (fixed mtimes, owners and order), so
the same inputs always give the same bytes and the same SHA256.
"""

from __future__ import annotations

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


def write_ar(members: list[ArMember]) -> bytes:
    out = io.BytesIO()
    out.write(AR_MAGIC)
    for m in members:
        if len(m.name) > 16:
            raise ValueError(f"ar member name too long: {m.name}")
        header = (f"{m.name:<16}{EPOCH:<12}{0:<6}{0:<6}{'100644':<8}{len(m.data):<10}`\n").encode(
            "ascii"
        )
        out.write(header)
        out.write(m.data)
        if len(m.data) % 2:
            out.write(b"\n")
    return out.getvalue()


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


def _tar(files: Mapping[str, bytes], dirs: tuple[str, ...] = ("./",)) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tf.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, EPOCH
            tf.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


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
            ArMember("debian-binary", b"2.0\n"),
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


def transitional_deb(name: str, version: str, architecture: str, prefix: str) -> bytes:
    """`rootio-X`: depends on exactly upstream X, so installing it always works and upgrades to
    the patched build the day one is published."""
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
    return build_deb(fields)
