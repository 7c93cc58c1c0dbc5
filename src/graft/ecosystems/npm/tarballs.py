"""npm tarballs (`.tgz`): the package.json inside, and the digests npm checks.

`dist.integrity` is a Subresource Integrity string (`sha512-<base64>`, possibly several
space-separated hashes); `dist.shasum` is the sha1 in hex. Both are turned into
{algorithm: hex} for the pull-through verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.errors import InvalidInput

MAX_MANIFEST_BYTES = 4 << 20
_SRI_ALGORITHMS = {"sha512": 64, "sha384": 48, "sha256": 32, "sha1": 20}


def parse_integrity(integrity: object, shasum: object = None) -> dict[str, str]:
    """{algorithm: hex} from `dist.integrity` and `dist.shasum`; unknown or malformed parts are
    left out (an empty result means: nothing to verify against)."""
    found: dict[str, str] = {}
    if isinstance(integrity, str):
        for item in integrity.split():
            algorithm, _, rest = item.partition("-")
            size = _SRI_ALGORITHMS.get(algorithm.lower())
            if size is None or algorithm.lower() in found:
                continue
            try:
                raw = base64.b64decode(rest.split("?", 1)[0], validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) == size:
                found[algorithm.lower()] = raw.hex()
    if isinstance(shasum, str) and len(shasum) == 40 and "sha1" not in found:
        try:
            bytes.fromhex(shasum)
        except ValueError:
            pass
        else:
            found["sha1"] = shasum.lower()
    return found


def sri(algorithm: str, hexdigest: str) -> str:
    return f"{algorithm}-{base64.b64encode(bytes.fromhex(hexdigest)).decode()}"


@dataclass(frozen=True, slots=True)
class TarballInfo:
    manifest: dict[str, Any]  # package.json
    sha512: str  # hex
    sha1: str  # hex
    size: int
    file_count: int
    unpacked_size: int

    @property
    def integrity(self) -> str:
        return sri("sha512", self.sha512)


def digests(path: Path) -> tuple[str, str, int]:
    """(sha512 hex, sha1 hex, size) of a file."""
    h512, h1 = hashlib.sha512(), hashlib.sha1()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h512.update(block)
            h1.update(block)
            size += len(block)
    return h512.hexdigest(), h1.hexdigest(), size


def read_tarball(path: Path, filename: str = "the tarball") -> TarballInfo:
    """Open a package tarball and read its package.json; raises InvalidInput when it is not a
    gzip'd tar holding `<folder>/package.json` with a name and a version."""
    manifest: dict[str, Any] | None = None
    files = unpacked = 0
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                files += 1
                unpacked += member.size
                parts = member.name.lstrip("./").split("/")
                if manifest is None and len(parts) == 2 and parts[1] == "package.json":
                    if member.size > MAX_MANIFEST_BYTES:
                        raise InvalidInput(f"{filename}: package.json is too large")
                    fh = tar.extractfile(member)
                    if fh is None:
                        continue
                    try:
                        loaded = json.loads(fh.read())
                    except ValueError as exc:
                        raise InvalidInput(f"{filename}: package.json is not JSON: {exc}") from None
                    if not isinstance(loaded, dict):
                        raise InvalidInput(f"{filename}: package.json is not a JSON object")
                    manifest = loaded
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{filename} is not a gzip-compressed tar archive: {exc}") from None
    if manifest is None:
        raise InvalidInput(f"{filename} holds no package/package.json")
    for key in ("name", "version"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise InvalidInput(f"{filename}: package.json has no {key!r}")
    sha512, sha1, size = digests(path)
    return TarballInfo(manifest, sha512, sha1, size, files, unpacked)
