"""Reading an upstream APT repository safely: the InRelease signature is verified against the
configured keyring, and every index is checked against the size and SHA256 the signed Release
lists, before anything from it is believed.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
from dataclasses import dataclass, field

from pysequoia import Cert, verify

from graft.errors import GraftError


class UpstreamUntrusted(GraftError):
    status_code = 502
    code = "upstream_untrusted"


def load_keyring(data: bytes) -> list[Cert]:
    """Every certificate in a keyring file (binary or armored), e.g. a distribution's
    archive keyring, which holds several keys."""
    try:
        return list(Cert.split_bytes(data))
    except Exception as exc:
        raise UpstreamUntrusted(f"the configured keyring cannot be read: {exc}") from None


def verify_inrelease(data: bytes, keyring: list[Cert], *, source: str) -> bytes:
    """The Release text of a clear-signed InRelease, if a key of `keyring` signed it."""
    try:
        result = verify(bytes=data, store=lambda _ids: keyring)
    except Exception:
        raise UpstreamUntrusted(
            f"{source}: InRelease is not signed by a key of the configured keyring; "
            "nothing from it is used"
        ) from None
    if not result.valid_sigs or result.bytes is None:
        raise UpstreamUntrusted(f"{source}: InRelease has no valid signature")
    return bytes(result.bytes)


@dataclass(frozen=True, slots=True)
class ReleaseIndex:
    fields: dict[str, str]
    sha256: dict[str, tuple[str, int]] = field(default_factory=dict)  # path → (hex, size)

    def check(self, path: str, data: bytes, *, source: str) -> bytes:
        """`data` if it is the `path` the Release lists (size and SHA256), else an error."""
        expected = self.sha256.get(path)
        if expected is None:
            raise UpstreamUntrusted(f"{source}: {path} is not listed in the signed Release")
        digest, size = expected
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise UpstreamUntrusted(
                f"{source}: {path} does not match the SHA256 in the signed Release "
                "(Hash Sum mismatch); nothing from it is used"
            )
        return data


def parse_release(text: bytes) -> ReleaseIndex:
    fields: dict[str, str] = {}
    sha256: dict[str, tuple[str, int]] = {}
    section = None
    for line in text.decode("utf-8", errors="replace").splitlines():
        if line.startswith(" ") and section == "SHA256":
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                sha256[parts[2]] = (parts[0].lower(), int(parts[1]))
        elif ":" in line and not line.startswith(" "):
            key, _, value = line.partition(":")
            section = key
            fields[key] = value.strip()
    return ReleaseIndex(fields, sha256)


def parse_packages(data: bytes) -> list[dict[str, str]]:
    """Stanzas of a Packages file. Written by hand for speed: a 63,000-package index parses in
    about a second, where a general deb822 parser takes many times that."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in data.decode("utf-8", errors="replace").split("\n"):
        if not line:
            if current:
                stanzas.append(current)
                current, last = {}, ""
        elif line[0] in " \t":
            if last:
                current[last] += "\n" + line
        else:
            key, _, value = line.partition(":")
            last = key
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def decompress(path: str, data: bytes) -> bytes:
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    return data
