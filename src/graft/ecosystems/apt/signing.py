"""The archive signing key of the APT repositories (OpenPGP, through Sequoia's Python binding).

`graft init` creates the key under the data directory's `keys/` folder (private, mode 0600);
clients fetch the public half as `/keys/graft-archive-keyring.gpg` (binary, for
`signed-by=`) or `.asc`. InRelease is clear-signed and Release.gpg is a detached armored
signature, which is what apt verifies with gpgv or sqv. pysequoia needs no gpg binary or agent
on the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from pysequoia import ArmorKind, SignatureMode, Tsk, armor, sign

KEY_FILE = "apt-archive.key"
USER_ID = "Graft archive signing key <graft@localhost>"


class ArchiveKey:
    def __init__(self, tsk: Tsk) -> None:
        self._tsk = tsk
        self._public = tsk.extract_certificate()

    @classmethod
    def load_or_create(cls, keys_dir: Path, user_id: str = USER_ID) -> ArchiveKey:
        path = keys_dir / KEY_FILE
        if path.exists():
            return cls(Tsk.from_bytes(path.read_bytes()))
        keys_dir.mkdir(parents=True, exist_ok=True)
        tsk = Tsk.generate(user_id=user_id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(tsk))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: a crash never leaves half a key
        return cls(tsk)

    @property
    def fingerprint(self) -> str:
        return str(self._public.fingerprint).upper()

    def public_binary(self) -> bytes:
        """The keyring file for `signed-by=` (what apt reads from /etc/apt/keyrings/)."""
        return bytes(self._public)

    def public_armored(self) -> str:
        return str(armor(bytes(self._public), ArmorKind.PublicKey))

    def clearsign(self, data: bytes) -> bytes:
        """InRelease: the Release text with its signature inline."""
        return bytes(sign(self._tsk.signer(), data, mode=SignatureMode.CLEAR))

    def detach_sign(self, data: bytes) -> bytes:
        """Release.gpg: an armored detached signature of Release."""
        return bytes(sign(self._tsk.signer(), data, mode=SignatureMode.DETACHED))
