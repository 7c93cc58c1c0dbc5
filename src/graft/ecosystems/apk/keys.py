"""The RSA key that signs Graft's Alpine indexes and packages (apk v2 "RSA" = PKCS#1 v1.5 + SHA1).

apk finds the verifying key by file name: a signature stored as `.SIGN.RSA.<name>` is checked
with `/etc/apk/keys/<name>`, a PEM "PUBLIC KEY" (SubjectPublicKeyInfo). So the key's name is
part of the format; ours is `graft-<8 hex of sha256(public DER)>.rsa.pub`, which changes
whenever the key does and therefore never shadows an older key a client still trusts.

4096-bit keys: that is what Alpine's own signing keys use, and signing happens only when an
index or a re-signed package is published (a few ms each), not per download.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PRIVATE_KEY_FILE = "apk-signing.key"
DEFAULT_BITS = 4096


class ApkKey:
    def __init__(self, private_key: rsa.RSAPrivateKey, name_prefix: str = "graft") -> None:
        self._private = private_key
        der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_name = f"{name_prefix}-{hashlib.sha256(der).hexdigest()[:8]}.rsa.pub"

    @classmethod
    def load_or_create(
        cls, keys_dir: Path, name_prefix: str = "graft", *, bits: int = DEFAULT_BITS
    ) -> ApkKey:
        path = keys_dir / PRIVATE_KEY_FILE
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{path} is not an RSA private key")
            return cls(loaded, name_prefix)
        keys_dir.mkdir(parents=True, exist_ok=True)
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link, not rename: atomic (never half a key) and it fails if another process
            # created the key meanwhile, in which case everyone uses that one.
            os.link(tmp, path)
        except FileExistsError:
            return cls.load_or_create(keys_dir, name_prefix, bits=bits)
        except OSError:  # a file system without hard links: atomic, but last writer wins
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return cls(private, name_prefix)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._private.public_key()

    def public_pem(self) -> bytes:
        """What a client installs as /etc/apk/keys/<key_name>."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign_sha1(self, data: bytes) -> bytes:
        # SHA1 is what apk's ".SIGN.RSA." scheme means; abuild signs nothing else.
        return self._private.sign(data, padding.PKCS1v15(), hashes.SHA1())


def load_public_keys(keys: Iterable[Path] | Mapping[str, bytes]) -> dict[str, rsa.RSAPublicKey]:
    """Trusted keys by the file name apk would look them up under (`.SIGN.RSA.<name>`).

    Takes key files (named as in /etc/apk/keys) or a {name: PEM} mapping, e.g. configured
    upstream keys.
    """
    items: list[tuple[str, bytes]]
    if isinstance(keys, Mapping):
        items = [(name, pem) for name, pem in keys.items()]
    else:
        items = [(path.name, path.read_bytes()) for path in keys]
    out: dict[str, rsa.RSAPublicKey] = {}
    for name, pem in items:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"apk key {name} is not an RSA public key")
        out[name] = key
    return out
