"""apk v2 package files (.apk): read, build, re-sign, and describe for the APKINDEX.

A package is three concatenated gzip members that together gunzip to one tar:
  1. signature segment: `.SIGN.RSA.<key name>`, RSA PKCS#1 v1.5 SHA1 over the raw compressed
     bytes of member 2;
  2. control segment: `.PKGINFO` (`key = value` lines) and optional install scripts;
  3. data: the files, a complete tar (the only member with end-of-archive blocks).
Segments 1 and 2 have no end blocks, so the signature covers only the control member; the data
is bound to it by `datahash = sha256(raw member 3)` in .PKGINFO. The package's identity in an
index (`C:`) is "Q1" + base64(sha1(raw member 2)), which is why a re-signed copy (new member
1) keeps its C: and a changed .PKGINFO (new member 2) gets a new one.
"""

from __future__ import annotations

import base64
import hashlib
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from graft.ecosystems.apk.apkindex import (
    END_OF_ARCHIVE,
    ApkFormatError,
    ApkUntrusted,
    Signature,
    gzip_member,
    next_gzip_member,
    read_tar,
    signature_member,
    signatures_in,
    tar_entry,
    verify_signature,
)
from graft.ecosystems.apk.keys import ApkKey

# Roughly the order abuild writes .PKGINFO in; unknown keys follow, datahash is always last
# because it is computed after everything else.
PKGINFO_ORDER = (
    "pkgname",
    "pkgver",
    "pkgdesc",
    "url",
    "builddate",
    "packager",
    "size",
    "arch",
    "origin",
    "commit",
    "maintainer",
    "provider_priority",
    "license",
    "replaces",
    "depend",
    "provides",
    "install_if",
    "triggers",
)
PKGINFO_TO_INDEX = {
    "pkgname": "P",
    "pkgver": "V",
    "arch": "A",
    "size": "I",
    "pkgdesc": "T",
    "url": "U",
    "license": "L",
    "origin": "o",
    "maintainer": "m",
    "builddate": "t",
    "commit": "c",
    "provider_priority": "k",
    "depend": "D",
    "provides": "p",
    "install_if": "i",
    "replaces": "r",
}
# Fields whose values are lists (repeatable lines in .PKGINFO, space-joined in the index).
LIST_FIELDS = frozenset({"depend", "provides", "replaces", "install_if", "triggers"})

PkgInfo = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class ApkPackage:
    pkginfo: PkgInfo
    control_gz: bytes
    data_gz: bytes
    signatures: tuple[Signature, ...]
    size: int  # of the whole .apk file, the index's S:

    @property
    def checksum(self) -> str:
        """The index's C: value."""
        return control_checksum(self.control_gz)

    def first(self, key: str, default: str = "") -> str:
        values = self.pkginfo.get(key)
        return values[0] if values else default

    def control_files(self) -> dict[str, bytes]:
        """.PKGINFO and the install scripts, by name."""
        _, content = next_gzip_member(self.control_gz, 0)
        return {info.name: data for info, data in read_tar(content) if info.isreg()}


def control_checksum(control_gz: bytes) -> str:
    return "Q1" + base64.b64encode(hashlib.sha1(control_gz).digest()).decode()


def parse_pkginfo(text: bytes) -> PkgInfo:
    out: PkgInfo = {}
    for line in text.decode("utf-8", "surrogateescape").splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(" = ")
        if not sep:
            continue  # apk ignores lines without " = "
        out.setdefault(key, []).append(value)
    return out


def render_pkginfo(fields: Mapping[str, str | Sequence[str]]) -> bytes:
    """`.PKGINFO` text; list values become repeated lines, empty values are dropped."""
    norm: dict[str, list[str]] = {
        k: [v] if isinstance(v, str) else list(v) for k, v in fields.items()
    }
    keys = [k for k in PKGINFO_ORDER if k in norm]
    keys += [k for k in norm if k not in PKGINFO_ORDER and k != "datahash"]
    if "datahash" in norm:
        keys.append("datahash")
    lines: list[str] = []
    for key in keys:
        for value in norm[key]:
            if "\n" in value or "\n" in key:
                raise ApkFormatError(f"newline in .PKGINFO field {key}")
            if value != "":
                lines.append(f"{key} = {value}\n")
    return "".join(lines).encode()


def read_apk(blob: bytes) -> ApkPackage:
    """Split a .apk into its members. Checks no signature: use `verify_apk` for a package file
    on its own, or trust it through a verified index whose C: equals `checksum`."""
    signatures: list[Signature] = []
    pos = 0
    while True:
        end, content = next_gzip_member(blob, pos)
        found = signatures_in(content)
        if found is None:
            break
        signatures.extend(found)
        pos = end
    control_gz = blob[pos:end]
    entries = read_tar(content)
    pkginfo_text = next((data for info, data in entries if info.name == ".PKGINFO"), None)
    if pkginfo_text is None:
        raise ApkFormatError("package has no .PKGINFO in its control segment")
    if any(not info.name.startswith(".") for info, _ in entries):
        raise ApkFormatError("control segment holds data files (packages without datahash?)")
    pkginfo = parse_pkginfo(pkginfo_text)
    # Everything after the control member is the data; its hash is checked by the caller
    # when it matters, without inflating what may be a large archive.
    data_gz = blob[end:]
    if not data_gz:
        raise ApkFormatError("package has no data segment")
    return ApkPackage(pkginfo, control_gz, data_gz, tuple(signatures), len(blob))


def verify_apk(blob: bytes, keys: Mapping[str, rsa.RSAPublicKey]) -> ApkPackage:
    """`read_apk`, plus what apk checks before trusting a package file on its own: a trusted
    signature over the control member and a datahash matching the data member."""
    try:
        pkg = read_apk(blob)
    except ApkFormatError as exc:
        raise ApkUntrusted(f"unreadable package: {exc.message}") from exc
    verify_signature(pkg.signatures, pkg.control_gz, keys)
    if pkg.pkginfo.get("datahash") != [hashlib.sha256(pkg.data_gz).hexdigest()]:
        raise ApkUntrusted("package data does not match its signed datahash")
    return pkg


def _data_tar(files: Mapping[str, bytes], modes: Mapping[str, int]) -> bytes:
    # apk refuses files whose directory has no entry of its own ("no dirent in archive"),
    # so every parent directory gets one, before its contents.
    dirs: set[str] = set()
    for path in files:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]) + "/")
    entries: dict[str, bytes] = {}
    for d in dirs:
        entries[d] = tar_entry(d.rstrip("/"), mode=0o755, kind=tarfile.DIRTYPE)
    for path, data in files.items():
        name = path.strip("/")
        # apk stores each file's sha1 in a pax header and records it in its installed db;
        # without it apk 2.x warns and marks the files as unverifiable.
        pax = {"APK-TOOLS.checksum.SHA1": hashlib.sha1(data).hexdigest()}
        entries[name] = tar_entry(name, data, mode=modes.get(path, 0o644), pax=pax)
    return b"".join(entries[k] for k in sorted(entries)) + END_OF_ARCHIVE


def _assemble(
    pkginfo: Mapping[str, str | Sequence[str]],
    data_gz: bytes,
    key: ApkKey,
    scripts: Mapping[str, bytes] | None = None,
) -> bytes:
    fields = dict(pkginfo)
    fields["datahash"] = hashlib.sha256(data_gz).hexdigest()
    control = tar_entry(".PKGINFO", render_pkginfo(fields))
    for name in sorted(scripts or {}):
        if name == ".PKGINFO" or not name.startswith("."):
            continue
        control += tar_entry(name, (scripts or {})[name], mode=0o755)
    control_gz = gzip_member(control)  # a segment: no end blocks, the data follows
    return signature_member(key.sign_sha1(control_gz), key.key_name) + control_gz + data_gz


def build_apk(
    pkginfo: Mapping[str, str | Sequence[str]],
    files: Mapping[str, bytes],
    key: ApkKey,
    *,
    modes: Mapping[str, int] | None = None,
    scripts: Mapping[str, bytes] | None = None,
) -> bytes:
    """A signed .apk. `size` (installed size) defaults to the sum of the file sizes."""
    fields = dict(pkginfo)
    fields.setdefault("size", str(sum(len(d) for d in files.values())))
    data_gz = gzip_member(_data_tar(files, modes or {}))
    return _assemble(fields, data_gz, key, scripts)


def transitional_apk(name: str, version: str, arch: str, prefix: str, key: ApkKey) -> bytes:
    """An empty package `<prefix><name>` that pulls in `name=version`."""
    return build_apk(
        {
            "pkgname": prefix + name,
            "pkgver": version,
            "pkgdesc": f"Transitional package for {name}",
            "arch": arch,
            "origin": prefix + name,
            "license": "none",
            "depend": [f"{name}={version}"],
            # Not 0: apk 2.14 never downloads a package of installed size 0 (a metapackage),
            # so the request that tells the organization what to patch would never arrive.
            "size": "1",
        },
        {},
        key,
    )


def rootio_copy(pkg: ApkPackage | bytes, prefix: str, upstream_version: str, key: ApkKey) -> bytes:
    """The same package under the name `<prefix><name>`, standing in for `name`.

    The data member is reused byte for byte (so datahash still matches); only .PKGINFO
    changes: the new name, `provides = name=<upstream_version>` so dependents on `name`
    resolve to it, and `replaces = name` so it may take over the original's files. Install
    scripts are carried over. Signed with our key.
    """
    if isinstance(pkg, bytes):
        pkg = read_apk(pkg)
    name = pkg.first("pkgname")
    if not name:
        raise ApkFormatError("package has no pkgname")
    fields: dict[str, list[str]] = {k: list(v) for k, v in pkg.pkginfo.items()}
    fields.pop("datahash", None)
    fields["pkgname"] = [prefix + name]
    fields["provides"] = [
        *(p for p in fields.get("provides", []) if _dep_name(p) != name),
        f"{name}={upstream_version}",
    ]
    fields["replaces"] = [*(r for r in fields.get("replaces", []) if r != name), name]
    scripts = {k: v for k, v in pkg.control_files().items() if k != ".PKGINFO"}
    return _assemble(fields, pkg.data_gz, key, scripts)


def resign(pkg: ApkPackage | bytes, key: ApkKey) -> bytes:
    """The same package (control fields, scripts and data unchanged) signed with our key, so
    that clients trusting only Graft's key accept a build signed elsewhere."""
    if isinstance(pkg, bytes):
        pkg = read_apk(pkg)
    fields: dict[str, list[str]] = {k: list(v) for k, v in pkg.pkginfo.items()}
    scripts = {k: v for k, v in pkg.control_files().items() if k != ".PKGINFO"}
    return _assemble(fields, pkg.data_gz, key, scripts)


def _dep_name(dep: str) -> str:
    for i, ch in enumerate(dep):
        if ch in "<>=~":
            return dep[:i]
    return dep


def index_entry(blob: bytes) -> dict[str, str]:
    """The APKINDEX block for a package file, as {letter: value}."""
    pkg = read_apk(blob)
    entry: dict[str, str] = {"C": pkg.checksum, "S": str(pkg.size)}
    for key, letter in PKGINFO_TO_INDEX.items():
        values = pkg.pkginfo.get(key)
        if not values:
            continue
        # Lists join with spaces (a single .PKGINFO line may already hold several).
        entry[letter] = " ".join(values) if key in LIST_FIELDS else values[0]
    entry.setdefault("I", "0")
    return entry
