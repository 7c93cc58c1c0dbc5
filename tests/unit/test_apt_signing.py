"""The APT archive key: created once, reloaded, and its signatures verified by real gpgv."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from graft.ecosystems.apt.signing import KEY_FILE, ArchiveKey

pytestmark = pytest.mark.skipif(shutil.which("gpgv") is None, reason="gpgv is not installed")

RELEASE = b"Origin: Graft\nLabel: Graft\nSuite: bookworm\nCodename: bookworm\nComponents: main\n"


def gpgv(keyring: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["gpgv", "--keyring", str(keyring), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_key_is_created_once_private_and_reloaded(tmp_path: Path) -> None:
    first = ArchiveKey.load_or_create(tmp_path / "keys")
    assert (tmp_path / "keys" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    again = ArchiveKey.load_or_create(tmp_path / "keys")
    assert again.fingerprint == first.fingerprint and len(first.fingerprint) == 40
    assert first.public_armored().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_inrelease_and_release_gpg_verify_with_gpgv(tmp_path: Path) -> None:
    key = ArchiveKey.load_or_create(tmp_path / "keys")
    keyring = tmp_path / "graft-archive-keyring.gpg"
    keyring.write_bytes(key.public_binary())
    inrelease = tmp_path / "InRelease"
    inrelease.write_bytes(key.clearsign(RELEASE))
    release, release_gpg = tmp_path / "Release", tmp_path / "Release.gpg"
    release.write_bytes(RELEASE)
    release_gpg.write_bytes(key.detach_sign(RELEASE))
    assert gpgv(keyring, inrelease).returncode == 0
    assert gpgv(keyring, release_gpg, release).returncode == 0
    # Tampering is caught.
    release.write_bytes(RELEASE.replace(b"bookworm", b"trixie"))
    assert gpgv(keyring, release_gpg, release).returncode != 0
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Suite: bookworm", b"Suite: trixie"))
    assert gpgv(keyring, inrelease).returncode != 0
    # Another key's keyring does not verify it.
    other = ArchiveKey.load_or_create(tmp_path / "other")
    keyring.write_bytes(other.public_binary())
    release.write_bytes(RELEASE)
    assert gpgv(keyring, release_gpg, release).returncode != 0
