"""APKINDEX.tar.gz (apk v2 repository index): render, sign, parse and verify.

The file is two concatenated gzip members. Member 1 is a tar segment (no end-of-archive
blocks) holding `.SIGN.<scheme>.<key name>` entries: RSA PKCS#1 v1.5 signatures over the raw
compressed bytes of member 2, with SHA1 for scheme `RSA` (what Graft writes) or SHA-256 /
SHA-512 for `RSA256` / `RSA512` (which apk 2.14 reads too, and newer upstream indexes may use).
Member 2 is a complete tar with `DESCRIPTION` and `APKINDEX`. Because tar segments lack the
end blocks, `tar xzf` sees one archive; apk instead hashes each gzip member separately, so the
member boundaries are part of the format.

The helpers for gzip members and tar segments live here and are shared with `apks.py`.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from graft.ecosystems.apk.keys import ApkKey
from graft.errors import GraftError

SIGN_PREFIX = ".SIGN.RSA."  # the scheme Graft signs with
# The RSA schemes apk-tools 2.14 verifies, by the hash they sign (its DSA one nobody uses).
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RSA": hashes.SHA1,
    "RSA256": hashes.SHA256,
    "RSA512": hashes.SHA512,
}
END_OF_ARCHIVE = b"\0" * 1024
# Inflated size cap for one member we parse (signature, control, index): Alpine's largest
# APKINDEX is a few tens of MB.
MAX_MEMBER_SIZE = 512 << 20

# The order apk-tools 2.x writes index fields in; D/p/i come last because they are lists.
# `r:` (replaces) is never written by apk 2.x, which ignores it in repository indexes; apk 3
# reads it when converting v2 indexes, so we append it after the lists.
INDEX_FIELD_ORDER = "CPVASITULomtckDpir"
# apk always writes these, even when empty.
ALWAYS_WRITTEN = "TUL"


class ApkUntrusted(GraftError):
    """An upstream index or package whose signature does not verify with a trusted key."""

    status_code = 502
    code = "apk_untrusted"


class ApkFormatError(GraftError):
    status_code = 422
    code = "apk_format"


# --- gzip members -------------------------------------------------------------------------


def gzip_member(data: bytes) -> bytes:
    # mtime=0 and no file name: the same content always gives the same bytes (and hashes).
    return gzip.compress(data, compresslevel=9, mtime=0)


def iter_gzip_members(
    blob: bytes, start: int = 0, *, limit: int = MAX_MEMBER_SIZE, chunk: int = 1 << 16
) -> Iterator[tuple[bytes, bytes]]:
    """(raw compressed bytes, decompressed bytes) of each gzip member, in order.

    Python's gzip module would silently join the members; apk signs and hashes each one on
    its own, so the exact boundaries matter. A fresh decompressobj stops at the end of one
    member; whatever it did not consume (`unused_data`) belongs to the next. Upstream bytes
    are inflated before their signature is checked, hence the size limit.
    """
    view = memoryview(blob)  # slices of a view do not copy a possibly large package
    pos = start
    while pos < len(blob):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out: list[bytes] = []
        size = 0
        fed = pos
        try:
            while not d.eof and fed < len(blob):
                piece = view[fed : fed + chunk]
                fed += len(piece)
                out.append(d.decompress(piece))
                size += len(out[-1])
                if size > limit:
                    raise ApkFormatError(f"gzip member at offset {pos} inflates past {limit}")
        except zlib.error as exc:
            raise ApkFormatError(f"corrupt gzip member at offset {pos}: {exc}") from exc
        if not d.eof:
            raise ApkFormatError(f"truncated gzip member at offset {pos}")
        end = fed - len(d.unused_data)
        yield blob[pos:end], b"".join(out)
        pos = end


def next_gzip_member(blob: bytes, start: int) -> tuple[int, bytes]:
    """End offset and decompressed content of the gzip member starting at `start`."""
    for raw, content in iter_gzip_members(blob, start):
        return start + len(raw), content
    raise ApkFormatError(f"no gzip member at offset {start}")


# --- tar segments ---------------------------------------------------------------------------


def tar_entry(
    name: str,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    kind: bytes = tarfile.REGTYPE,
    pax: Mapping[str, str] | None = None,
) -> bytes:
    """One tar entry (header, content, padding) with fixed owner and mtime: deterministic."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if pax:
        info.pax_headers = dict(pax)
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    else:
        header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    body = data if kind == tarfile.REGTYPE else b""
    return header + body + b"\0" * (-len(body) % tarfile.BLOCKSIZE)


def read_tar(content: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Entries of a tar stream or segment (a segment just ends without end blocks)."""
    out: list[tuple[tarfile.TarInfo, bytes]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:") as tar:
            for info in tar:
                data = b""
                if info.isreg():
                    fh = tar.extractfile(info)
                    data = fh.read() if fh is not None else b""
                out.append((info, data))
    except tarfile.TarError as exc:
        raise ApkFormatError(f"bad tar data: {exc}") from exc
    return out


def signature_member(signature: bytes, key_name: str) -> bytes:
    return gzip_member(tar_entry(SIGN_PREFIX + key_name, signature))


@dataclass(frozen=True, slots=True)
class Signature:
    scheme: str  # a key of SIGNATURE_HASHES
    key_name: str  # the file name in /etc/apk/keys
    data: bytes


def signatures_in(content: bytes) -> list[Signature] | None:
    """The RSA signatures in this member if it is a signature segment, else None."""
    entries = read_tar(content)
    if not entries or not all(info.name.startswith(".SIGN.") for info, _ in entries):
        return None
    out: list[Signature] = []
    for info, data in entries:
        # key names contain dots (alpine-devel@alpinelinux.org-6165ee59.rsa.pub), schemes don't
        scheme, _, key_name = info.name.removeprefix(".SIGN.").partition(".")
        if scheme in SIGNATURE_HASHES and key_name:  # DSA and unknown schemes: skipped
            out.append(Signature(scheme, key_name, data))
    return out


def verify_signature(
    signatures: Sequence[Signature], signed: bytes, keys: Mapping[str, rsa.RSAPublicKey]
) -> str:
    """The name of the trusted key whose signature over `signed` verifies; else ApkUntrusted.

    Like apk, one good signature from a trusted key is enough.
    """
    if not signatures:
        raise ApkUntrusted("no .SIGN.RSA, .SIGN.RSA256 or .SIGN.RSA512 signature")
    for sig in signatures:
        key = keys.get(sig.key_name)
        if key is None:
            continue
        try:
            key.verify(sig.data, signed, padding.PKCS1v15(), SIGNATURE_HASHES[sig.scheme]())
        except InvalidSignature:
            continue
        return sig.key_name
    names = ", ".join(sorted(f"{s.key_name} ({s.scheme})" for s in signatures))
    raise ApkUntrusted(f"no valid signature from a trusted key (signed by: {names})")


# --- APKINDEX text ----------------------------------------------------------------------------


def render_apkindex(entries: list[dict[str, str]]) -> bytes:
    """APKINDEX text: one block per package, fields in apk's order, blocks sorted by name and
    version text so the same set of packages always gives the same bytes."""
    blocks: list[str] = []
    for entry in sorted(entries, key=lambda e: (e.get("P", ""), e.get("V", ""), e.get("A", ""))):
        lines: list[str] = []
        for field in INDEX_FIELD_ORDER:
            value = entry.get(field)
            if value is None and field in ALWAYS_WRITTEN:
                value = ""
            if value is None or (value == "" and field not in ALWAYS_WRITTEN):
                continue
            if "\n" in value:
                raise ApkFormatError(f"newline in APKINDEX field {field}: {value!r}")
            lines.append(f"{field}:{value}\n")
        for field in sorted(set(entry) - set(INDEX_FIELD_ORDER)):
            lines.append(f"{field}:{entry[field]}\n")
        blocks.append("".join(lines) + "\n")
    return "".join(blocks).encode()


def parse_apkindex(text: bytes) -> list[dict[str, str]]:
    """The blocks of an APKINDEX as {letter: value}; a repeated letter keeps the last value."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for raw in text.decode("utf-8", "surrogateescape").split("\n"):
        if not raw:
            if current:
                out.append(current)
                current = {}
            continue
        if len(raw) < 2 or raw[1] != ":":
            continue  # apk skips lines it cannot parse
        current[raw[0]] = raw[2:]
    if current:
        out.append(current)
    return out


# --- signed index -------------------------------------------------------------------------------


def build_signed_index(apkindex: bytes, description: str, key: ApkKey) -> bytes:
    """APKINDEX.tar.gz signed with `key`; byte-identical for identical inputs."""
    tar = (
        tar_entry("DESCRIPTION", description.encode())
        + tar_entry("APKINDEX", apkindex)
        + END_OF_ARCHIVE
    )
    index_member = gzip_member(tar)
    return signature_member(key.sign_sha1(index_member), key.key_name) + index_member


def read_signed_index(blob: bytes, keys: Mapping[str, rsa.RSAPublicKey]) -> bytes:
    """The APKINDEX text of a signed index, after checking its signature; else ApkUntrusted."""
    signatures: list[Signature] = []
    index: tuple[bytes, bytes] | None = None
    try:
        for raw, content in iter_gzip_members(blob):
            if index is not None:
                # apk would read it as part of the index, but nobody signed it.
                raise ApkUntrusted("unsigned data after the signed index")
            found = signatures_in(content)
            if found is not None:
                signatures.extend(found)
            else:
                index = (raw, content)
    except ApkFormatError as exc:
        raise ApkUntrusted(f"unreadable index: {exc.message}") from exc
    if index is None:
        raise ApkUntrusted("index has no content after its signature")
    verify_signature(signatures, index[0], keys)
    try:
        files = {info.name: data for info, data in read_tar(index[1])}
    except ApkFormatError as exc:
        raise ApkUntrusted(f"unreadable index: {exc.message}") from exc
    if "APKINDEX" not in files:
        raise ApkUntrusted("signed index has no APKINDEX file")
    return files["APKINDEX"]
