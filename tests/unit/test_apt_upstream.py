"""Upstream APT trust: signature against the keyring, index hashes against the signed Release."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from graft.ecosystems.apt.index import (
    ReleaseInfo,
    make_chunks,
    packages_files,
    render_release,
    render_stanza,
)
from graft.ecosystems.apt.signing import ArchiveKey
from graft.ecosystems.apt.upstream import (
    UpstreamUntrusted,
    decompress,
    load_keyring,
    parse_packages,
    parse_release,
    verify_inrelease,
)

STANZAS = [
    {"Package": f"pkg{i}", "Version": f"1.{i}-1", "Architecture": "amd64",
     "Description": f"package {i}\n long text", "SHA256": f"{i:064x}", "Size": str(100 + i),
     "Filename": f"pool/main/p/pkg{i}/pkg{i}_1.{i}-1_amd64.deb"}
    for i in range(50)
]  # fmt: skip


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[ArchiveKey, bytes, dict[str, bytes]]:
    key = ArchiveKey.load_or_create(tmp_path / "upstream-keys")
    items = [(s["Package"], (render_stanza(s) + "\n").encode()) for s in STANZAS]
    files = packages_files("main/binary-amd64/Packages", make_chunks(items, size=16))
    info = ReleaseInfo("Debian", "Debian", "stable", "bookworm", ["main"], ["amd64"])
    release = render_release(info, files, dt.datetime.now(dt.UTC))
    return key, key.clearsign(release), {path: f.data() for path, f in files.items()}


def test_signed_release_and_matching_index_are_accepted(
    upstream: tuple[ArchiveKey, bytes, dict[str, bytes]],
) -> None:
    key, inrelease, files = upstream
    text = verify_inrelease(inrelease, load_keyring(key.public_binary()), source="up")
    release = parse_release(text)
    assert release.fields["Codename"] == "bookworm"
    path = "main/binary-amd64/Packages.xz"
    data = release.check(path, files[path], source="up")
    stanzas = parse_packages(decompress(path, data))
    assert len(stanzas) == 50
    assert stanzas[0]["Description"] == "package 0\n long text"
    assert {s["Package"] for s in stanzas} == {f"pkg{i}" for i in range(50)}


def test_wrong_key_or_tampered_release_is_refused(
    upstream: tuple[ArchiveKey, bytes, dict[str, bytes]], tmp_path: Path
) -> None:
    key, inrelease, _files = upstream
    other = ArchiveKey.load_or_create(tmp_path / "other")
    with pytest.raises(UpstreamUntrusted, match="not signed by a key"):
        verify_inrelease(inrelease, load_keyring(other.public_binary()), source="up")
    tampered = inrelease.replace(b"Codename: bookworm", b"Codename: trixie")
    with pytest.raises(UpstreamUntrusted):
        verify_inrelease(tampered, load_keyring(key.public_binary()), source="up")
    # Both keys in one keyring: accepted (archive keyrings hold several keys).
    both = load_keyring(other.public_binary() + key.public_binary())
    assert len(both) == 2
    assert verify_inrelease(inrelease, both, source="up")


def test_index_not_matching_the_release_is_refused(
    upstream: tuple[ArchiveKey, bytes, dict[str, bytes]],
) -> None:
    key, inrelease, files = upstream
    release = parse_release(
        verify_inrelease(inrelease, load_keyring(key.public_binary()), source="up")
    )
    path = "main/binary-amd64/Packages.xz"
    with pytest.raises(UpstreamUntrusted, match="Hash Sum mismatch"):
        release.check(path, files[path][:-1] + b"\0", source="up")
    with pytest.raises(UpstreamUntrusted, match="not listed"):
        release.check("main/binary-arm64/Packages.xz", files[path], source="up")
