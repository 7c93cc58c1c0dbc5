"""The APT archive key: created once, reloaded, and its signatures verified by real gpgv."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from graft.ecosystems.apt.signing import KEY_FILE, ArchiveKey, ArchiveKeyring, install_key

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


def test_rotation_signs_with_both_keys_during_the_overlap(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ring = ArchiveKeyring(keys, check_every=0)
    old = ring.signing_keys()[0]
    install_key(keys, ArchiveKey.generate(), dt.timedelta(hours=1))
    new = ArchiveKey.load_or_create(keys)
    assert [k.fingerprint for k in ring.signing_keys()] == [new.fingerprint, old.fingerprint]
    assert ring.identity() == f"{new.fingerprint},{old.fingerprint}"
    inrelease, release, release_gpg = (
        tmp_path / "InRelease",
        tmp_path / "Release",
        tmp_path / "R.gpg",
    )
    inrelease.write_bytes(ring.clearsign(RELEASE))
    release.write_bytes(RELEASE)
    release_gpg.write_bytes(ring.detach_sign(RELEASE))
    for name, keyring_bytes in (
        ("old", old.public_binary()),
        ("new", new.public_binary()),
        ("published", ring.public_binary()),
    ):
        keyring = tmp_path / f"{name}.gpg"
        keyring.write_bytes(keyring_bytes)
        for files in ((inrelease,), (release_gpg, release)):
            checked = gpgv(keyring, *files)
            assert "Good signature" in checked.stderr, (name, checked.stderr)
            assert "BAD signature" not in checked.stderr
    published = tmp_path / "published.gpg"
    assert gpgv(published, inrelease).returncode == 0  # the published keyring has both keys
    assert gpgv(published, release_gpg, release).returncode == 0


def test_overlap_ends_and_zero_overlap_stops_at_once(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ring = ArchiveKeyring(keys, check_every=0)
    old = ring.signing_keys()[0]
    install_key(keys, ArchiveKey.generate(), dt.timedelta(hours=1))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert [k.fingerprint for k in ring.signing_keys(later)] != [old.fingerprint]
    assert len(ring.signing_keys(later)) == 1
    install_key(keys, ArchiveKey.generate(), dt.timedelta(0))
    assert len(ring.signing_keys()) == 1
    keyring = tmp_path / "k.gpg"
    keyring.write_bytes(ring.public_binary())
    inrelease = tmp_path / "InRelease"
    inrelease.write_bytes(ring.clearsign(RELEASE))
    assert gpgv(keyring, inrelease).returncode == 0


def test_import_refuses_a_public_key(tmp_path: Path) -> None:
    key = ArchiveKey.generate()
    with pytest.raises(ValueError, match="secret key"):
        ArchiveKey.from_bytes(key.public_binary())
    with pytest.raises(ValueError):
        ArchiveKey.from_bytes(b"not a key")
    assert ArchiveKey.from_bytes(key.secret_bytes()).fingerprint == key.fingerprint
    install_key(tmp_path / "k", key, dt.timedelta(0))
    with pytest.raises(ValueError, match="already the current key"):
        install_key(tmp_path / "k", key, dt.timedelta(0))
