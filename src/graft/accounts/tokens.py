"""Registry token format: `graft_` + 43 base62 characters of secret + 6 of CRC32 checksum.

256 bits from `secrets`, a fixed prefix that secret scanners can match, and a checksum that lets
Graft (and scanners) reject a mistyped or truncated token without any lookup. Only the SHA-256 of
the whole token is stored: the token has full entropy, so a slow password hash adds nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

PREFIX = "graft_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SECRET_LEN = 43  # 62**43 > 2**256
_CHECK_LEN = 6  # 62**6 > 2**32
TOKEN_RE = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_SECRET_LEN + _CHECK_LEN}}}$")
DISPLAY_PREFIX_LEN = len(PREFIX) + 6


def _base62(n: int, width: int) -> str:
    chars = []
    for _ in range(width):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate() -> str:
    body = _base62(secrets.randbits(256), _SECRET_LEN)
    return PREFIX + body + _checksum(body)


def well_formed(token: str) -> bool:
    if not TOKEN_RE.match(token):
        return False
    body, check = token[len(PREFIX) : -_CHECK_LEN], token[-_CHECK_LEN:]
    return secrets.compare_digest(_checksum(body), check)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LEN]


def constant_time_equal(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
