"""The archive signing keys of the APT repositories (OpenPGP, through Sequoia's Python binding).

`graft init` (or the first request) creates the key under the data directory's `keys/`
folder (private, mode 0600); `graft key import apt FILE` brings an existing one. Clients fetch
the public half as `/keys/graft-archive-keyring.gpg` (binary, for `signed-by=`) or `.asc`.
InRelease is clear-signed and Release.gpg is a detached armored signature, which is what apt
verifies with gpgv or sqv. pysequoia needs no gpg binary or agent on the server.

Rotation (`graft key rotate apt --overlap 30d`): the new key becomes current and the old one
keeps signing *alongside* it until the overlap ends: InRelease and Release.gpg then carry one
signature per key, and the published keyring holds both public keys. apt accepts a file with
several signatures when one of them is from a key in its `signed-by` keyring, so clients keep
working whichever keyring they have while they pick up the new one. pysequoia signs with one
key at a time; the signatures are combined here (their packets concatenated under one armor).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pysequoia import ArmorKind, SignatureMode, Tsk, armor, sign

KEY_FILE = "apt-archive.key"  # the current key
RETIRING_FILE = "apt-archive.retiring.key"  # the previous key, during the overlap
RETIRING_UNTIL_FILE = "apt-archive.retiring.until"  # ISO 8601 end of the overlap
USER_ID = "Graft archive signing key <graft@localhost>"
_SIG_BEGIN = "-----BEGIN PGP SIGNATURE-----"
_SIG_END = "-----END PGP SIGNATURE-----"


def _write_private(path: Path, data: bytes) -> None:
    """Atomically (a crash never leaves half a key), readable only by the owner."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ArchiveKey:
    def __init__(self, tsk: Tsk) -> None:
        self._tsk = tsk
        self._public = tsk.extract_certificate()

    @classmethod
    def generate(cls, user_id: str = USER_ID) -> ArchiveKey:
        return cls(Tsk.generate(user_id=user_id))

    @classmethod
    def from_bytes(cls, data: bytes) -> ArchiveKey:
        try:
            tsk = Tsk.from_bytes(data)
            tsk.signer()  # a public key (no secret material) cannot sign
        except Exception as exc:  # pysequoia raises plain exceptions for unusable input
            raise ValueError(f"not an OpenPGP secret key that can sign: {exc}") from None
        return cls(tsk)

    @classmethod
    def load_or_create(cls, keys_dir: Path, user_id: str = USER_ID) -> ArchiveKey:
        path = keys_dir / KEY_FILE
        if path.exists():
            return cls(Tsk.from_bytes(path.read_bytes()))
        keys_dir.mkdir(parents=True, exist_ok=True)
        key = cls.generate(user_id)
        _write_private(path, key.secret_bytes())
        return key

    def secret_bytes(self) -> bytes:
        return bytes(self._tsk)

    @property
    def fingerprint(self) -> str:
        return str(self._public.fingerprint).upper()

    def public_binary(self) -> bytes:
        return bytes(self._public)

    def public_armored(self) -> str:
        return str(armor(bytes(self._public), ArmorKind.PublicKey))

    def clearsign(self, data: bytes) -> bytes:
        return bytes(sign(self._tsk.signer(), data, mode=SignatureMode.CLEAR))

    def detach_sign(self, data: bytes) -> bytes:
        return bytes(sign(self._tsk.signer(), data, mode=SignatureMode.DETACHED))


def _dearmor(block: str) -> bytes:
    """The packets of one armored block (the base64 body; the CRC line is dropped)."""
    lines = block.strip().splitlines()
    body: list[str] = []
    in_body = False
    for line in lines[1:-1]:  # inside BEGIN / END
        if not in_body:
            in_body = not line.strip()  # armor headers end at the first empty line
            continue
        if line.startswith("="):  # the CRC24 checksum
            break
        body.append(line.strip())
    return base64.b64decode("".join(body))


def _signature_block(packets: bytes) -> str:
    return str(armor(packets, ArmorKind.Signature))


def combine_clearsigned(messages: list[bytes]) -> bytes:
    """One clear-signed message with every signature of `messages` (same text)."""
    if len(messages) == 1:
        return messages[0]
    texts: set[str] = set()
    hashes: list[str] = []
    packets = b""
    for raw in messages:
        message = raw.decode()
        head, _, rest = message.partition(_SIG_BEGIN)
        header, _, text = head.partition("\n\n")
        for h in re.findall(r"^Hash: (.+)$", header, re.M):
            hashes.extend(x.strip() for x in h.split(",") if x.strip() not in hashes)
        texts.add(text)
        packets += _dearmor(_SIG_BEGIN + rest)
    if len(texts) != 1:
        raise ValueError("clear-signed messages of different texts cannot be combined")
    return (
        f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: {', '.join(dict.fromkeys(hashes))}\n\n"
        f"{texts.pop()}{_signature_block(packets)}"
    ).encode()


def combine_detached(signatures: list[bytes]) -> bytes:
    if len(signatures) == 1:
        return signatures[0]
    return _signature_block(b"".join(_dearmor(s.decode()) for s in signatures)).encode()


@dataclass(frozen=True, slots=True)
class KeyState:
    current: ArchiveKey
    retiring: ArchiveKey | None
    retiring_until: dt.datetime | None

    def signing_keys(self, now: dt.datetime) -> list[ArchiveKey]:
        keys = [self.current]
        if self.retiring is not None and self.retiring_until and now < self.retiring_until:
            keys.append(self.retiring)
        return keys


class ArchiveKeyring:
    """The keys that sign now, re-read from the data directory when they change on disk (a
    rotation by `graft key rotate` reaches running servers within `check_every` seconds)."""

    def __init__(self, keys_dir: Path, *, check_every: float = 5.0) -> None:
        self.keys_dir = keys_dir
        self.check_every = check_every
        self._state: KeyState | None = None
        self._stamp: tuple[float, ...] = ()
        self._checked = 0.0

    def _files_stamp(self) -> tuple[float, ...]:
        out = []
        for name in (KEY_FILE, RETIRING_FILE, RETIRING_UNTIL_FILE):
            try:
                out.append((self.keys_dir / name).stat().st_mtime)
            except FileNotFoundError:
                out.append(0.0)
        return tuple(out)

    def state(self) -> KeyState:
        now = time.monotonic()
        if self._state is not None and now - self._checked < self.check_every:
            return self._state
        self._checked = now
        stamp = self._files_stamp()
        if self._state is None or stamp != self._stamp:
            self._state = load_state(self.keys_dir)
            self._stamp = self._files_stamp()
        return self._state

    def signing_keys(self, now: dt.datetime | None = None) -> list[ArchiveKey]:
        return self.state().signing_keys(now or dt.datetime.now(dt.UTC))

    def identity(self) -> str:
        """Changes when the set of signing keys changes (to re-sign cached indexes)."""
        return ",".join(k.fingerprint for k in self.signing_keys())

    def public_binary(self) -> bytes:
        """The keyring for `signed-by=`: every key that signs now (both during an overlap)."""
        return b"".join(k.public_binary() for k in self.signing_keys())

    def public_armored(self) -> str:
        return str(armor(self.public_binary(), ArmorKind.PublicKey))

    def clearsign(self, data: bytes) -> bytes:
        return combine_clearsigned([k.clearsign(data) for k in self.signing_keys()])

    def detach_sign(self, data: bytes) -> bytes:
        return combine_detached([k.detach_sign(data) for k in self.signing_keys()])


def load_state(keys_dir: Path) -> KeyState:
    current = ArchiveKey.load_or_create(keys_dir)
    retiring = until = None
    try:
        retiring = ArchiveKey.from_bytes((keys_dir / RETIRING_FILE).read_bytes())
        until = dt.datetime.fromisoformat((keys_dir / RETIRING_UNTIL_FILE).read_text().strip())
    except FileNotFoundError:
        retiring = until = None
    return KeyState(current, retiring, until)


def install_key(keys_dir: Path, new: ArchiveKey, overlap: dt.timedelta) -> KeyState:
    """Make `new` the current key; the old current key signs alongside until now + overlap
    (overlap 0: it stops at once). Returns the new state."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    old = load_state(keys_dir).current
    if old.fingerprint == new.fingerprint:
        raise ValueError(f"key {new.fingerprint} is already the current key")
    until = dt.datetime.now(dt.UTC) + overlap
    # Order matters for readers: the retiring key is in place before the current one changes.
    _write_private(keys_dir / RETIRING_FILE, old.secret_bytes())
    (keys_dir / RETIRING_UNTIL_FILE).write_text(until.isoformat() + "\n")
    _write_private(keys_dir / KEY_FILE, new.secret_bytes())
    return load_state(keys_dir)
