"""Maven checksum files: what Graft writes (the bare hex digest) and what it reads from
upstreams and deploying clients (the digest, optionally followed by a file name, in any case;
also the BSD `MD5 (file) = <hex>` form some old tools wrote)."""

from __future__ import annotations

import hashlib
import re

from graft.ecosystems.maven.layout import CHECKSUMS

HEX_LENGTH = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


def parse(text: bytes | str, algorithm: str) -> str | None:
    """The lowercase hex digest in a checksum file, or None if there is none of that length."""
    if isinstance(text, bytes):
        text = text[:4096].decode("ascii", "replace")
    length = HEX_LENGTH[algorithm]
    for token in re.split(r"[\s=*()]+", text.strip()):
        if len(token) == length and re.fullmatch(r"[0-9a-fA-F]+", token):
            return token.lower()
    return None


def digests(data: bytes) -> dict[str, str]:
    """Every checksum Maven knows, of some bytes (rendered metadata, small files)."""
    return {a: hashlib.new(a, data).hexdigest() for a in CHECKSUMS}


def body(hex_digest: str) -> bytes:
    return hex_digest.encode()
