"""apk v2 formats: the signing key, signed APKINDEX.tar.gz, and built / re-signed packages,
checked against an independent verifier (tests/fixtures/apk_verify.py)."""

from __future__ import annotations

import gzip
import hashlib
import stat
from pathlib import Path

import pytest

from graft.ecosystems.apk import versions
from graft.ecosystems.apk.apkindex import (
    ApkFormatError,
    ApkUntrusted,
    build_signed_index,
    gzip_member,
    iter_gzip_members,
    parse_apkindex,
    read_signed_index,
    render_apkindex,
)
from graft.ecosystems.apk.apks import (
    build_apk,
    index_entry,
    read_apk,
    rootio_copy,
    transitional_apk,
    verify_apk,
)
from graft.ecosystems.apk.keys import PRIVATE_KEY_FILE, ApkKey, load_public_keys
from tests.fixtures import apk_verify

UPSTREAM_VERSION = "8.9.1-r1"
PATCHED_VERSION = "8.9.1-r10071"  # Graft's version for a patched -r1
ZLIB_VERSION = "1.3.1-r10000"
PREFIX = "rootio-"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("apk-keys")


@pytest.fixture(scope="module")
def key(keys_dir: Path) -> ApkKey:
    return ApkKey.load_or_create(keys_dir)


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> ApkKey:
    return ApkKey.load_or_create(tmp_path_factory.mktemp("other"), bits=2048)


@pytest.fixture(scope="module")
def upstream(other_key: ApkKey) -> bytes:
    """A stand-in for an upstream package (signed by someone else), with an install script."""
    return build_apk(
        {
            "pkgname": "curl",
            "pkgver": PATCHED_VERSION,
            "pkgdesc": "URL retrieval utility and library",
            "url": "https://curl.se/",
            "builddate": "1700000000",
            "arch": "x86_64",
            "origin": "curl",
            "license": "curl",
            "depend": ["ca-certificates-bundle", "so:libc.musl-x86_64.so.1"],
            "provides": ["cmd:curl=" + PATCHED_VERSION],
        },
        {"usr/bin/curl": b"\x7fELF fake curl\n", "usr/share/doc/curl/README": b"read me\n"},
        other_key,
        modes={"usr/bin/curl": 0o755},
        scripts={".post-install": b"#!/bin/sh\nexit 0\n"},
    )


def test_versions_follow_graft_scheme() -> None:
    assert versions.is_valid(UPSTREAM_VERSION)
    assert versions.is_valid(PATCHED_VERSION)
    assert versions.is_valid(ZLIB_VERSION)
    assert versions.compare(PATCHED_VERSION, UPSTREAM_VERSION) > 0


def test_key_created_once_private_and_reloaded(keys_dir: Path, key: ApkKey) -> None:
    path = keys_dir / PRIVATE_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.key_name.startswith("graft-") and key.key_name.endswith(".rsa.pub")
    assert len(key.key_name) == len("graft-12345678.rsa.pub")
    before = path.read_bytes()
    again = ApkKey.load_or_create(keys_dir)
    assert path.read_bytes() == before
    assert again.key_name == key.key_name
    assert again.public_pem() == key.public_pem()
    assert key.public_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert key.public_key.key_size == 4096
    assert list(keys_dir.iterdir()) == [path]  # no temp file left behind


def test_load_public_keys_from_files_and_mapping(tmp_path: Path, key: ApkKey) -> None:
    (tmp_path / key.key_name).write_bytes(key.public_pem())
    by_file = load_public_keys([tmp_path / key.key_name])
    by_map = load_public_keys({key.key_name: key.public_pem()})
    assert set(by_file) == set(by_map) == {key.key_name}
    assert by_file[key.key_name].public_numbers() == key.public_key.public_numbers()


def _entries(key: ApkKey, upstream: bytes) -> list[dict[str, str]]:
    return [
        index_entry(rootio_copy(upstream, PREFIX, UPSTREAM_VERSION, key)),
        index_entry(transitional_apk("zlib", ZLIB_VERSION, "x86_64", PREFIX, key)),
    ]


def test_signed_index_verifies_independently(key: ApkKey, upstream: bytes) -> None:
    entries = _entries(key, upstream)
    text = render_apkindex(entries)
    blob = build_signed_index(text, "graft test", key)
    assert build_signed_index(text, "graft test", key) == blob  # deterministic
    checked = apk_verify.verify_index(blob, key.key_name, key.public_pem())
    assert checked.description == "graft test"
    assert checked.text == text
    assert [p["P"] for p in checked.packages] == ["rootio-curl", "rootio-zlib"]
    assert read_signed_index(blob, load_public_keys({key.key_name: key.public_pem()})) == text
    parsed = [{k: v for k, v in p.items() if v} for p in parse_apkindex(text)]  # drop empty U:
    assert parsed == sorted(entries, key=lambda e: e["P"])
    assert parse_apkindex(text) == checked.packages


def test_render_apkindex_field_order() -> None:
    text = render_apkindex(
        [{"D": "a b", "P": "x", "C": "Q1abc=", "V": "1-r0", "A": "noarch", "S": "1", "I": "0"}]
    )
    assert text == b"C:Q1abc=\nP:x\nV:1-r0\nA:noarch\nS:1\nI:0\nT:\nU:\nL:\nD:a b\n\n"


def test_tampered_index_rejected(key: ApkKey, upstream: bytes) -> None:
    blob = bytearray(build_signed_index(render_apkindex(_entries(key, upstream)), "d", key))
    member2 = len(apk_verify.gzip_members(bytes(blob))[0].raw)
    blob[member2 + 20] ^= 0x01  # inside member 2's deflate body
    trusted = load_public_keys({key.key_name: key.public_pem()})
    with pytest.raises(ApkUntrusted) as exc:
        read_signed_index(bytes(blob), trusted)
    assert exc.value.status_code == 502


def test_index_with_replaced_content_rejected(key: ApkKey, upstream: bytes) -> None:
    # still valid gzip, so only the signature can catch it
    blob = build_signed_index(render_apkindex(_entries(key, upstream)), "d", key)
    sig, index = apk_verify.gzip_members(blob)
    forged = sig.raw + gzip.compress(index.content.replace(b"T:Trans", b"T:Evil!"), mtime=0)
    with pytest.raises(ApkUntrusted):
        read_signed_index(forged, load_public_keys({key.key_name: key.public_pem()}))
    with pytest.raises(apk_verify.VerifyError):
        apk_verify.verify_index(forged, key.key_name, key.public_pem())
    # nor may unsigned content ride along after the signed member
    with pytest.raises(ApkUntrusted):
        read_signed_index(
            blob + gzip.compress(b"x"), load_public_keys({key.key_name: key.public_pem()})
        )


def test_index_signed_by_unknown_or_wrong_key_rejected(
    key: ApkKey, other_key: ApkKey, upstream: bytes
) -> None:
    blob = build_signed_index(render_apkindex(_entries(key, upstream)), "d", key)
    with pytest.raises(ApkUntrusted):
        read_signed_index(blob, load_public_keys({other_key.key_name: other_key.public_pem()}))
    # right name, wrong key material
    with pytest.raises(ApkUntrusted):
        read_signed_index(blob, load_public_keys({key.key_name: other_key.public_pem()}))
    with pytest.raises(apk_verify.VerifyError):
        apk_verify.verify_index(blob, key.key_name, other_key.public_pem())


def test_unsigned_index_rejected(key: ApkKey, upstream: bytes) -> None:
    blob = build_signed_index(render_apkindex(_entries(key, upstream)), "d", key)
    member2 = blob[len(apk_verify.gzip_members(blob)[0].raw) :]
    with pytest.raises(ApkUntrusted):
        read_signed_index(member2, load_public_keys({key.key_name: key.public_pem()}))
    with pytest.raises(ApkUntrusted):
        read_signed_index(b"not gzip", load_public_keys({key.key_name: key.public_pem()}))


def test_transitional_apk(key: ApkKey) -> None:
    blob = transitional_apk("curl", PATCHED_VERSION, "x86_64", PREFIX, key)
    assert transitional_apk("curl", PATCHED_VERSION, "x86_64", PREFIX, key) == blob
    checked = apk_verify.verify_apk(blob, key.key_name, key.public_pem())
    assert checked.values("pkgname") == ["rootio-curl"]
    assert checked.values("pkgver") == [PATCHED_VERSION]
    assert checked.values("depend") == [f"curl={PATCHED_VERSION}"]
    assert checked.files == []
    entry = index_entry(blob)
    assert entry["C"] == checked.checksum
    assert entry["P"] == "rootio-curl" and entry["V"] == PATCHED_VERSION
    assert entry["A"] == "x86_64"
    assert entry["D"] == f"curl={PATCHED_VERSION}"
    assert entry["S"] == str(len(blob))
    # installed size 1, not 0: apk 2.14 treats I:0 as a metapackage and never downloads it
    assert entry["I"] == "1"


def test_rootio_copy(key: ApkKey, other_key: ApkKey, upstream: bytes) -> None:
    original = apk_verify.verify_apk(upstream, other_key.key_name, other_key.public_pem())
    blob = rootio_copy(upstream, PREFIX, UPSTREAM_VERSION, key)
    checked = apk_verify.verify_apk(blob, key.key_name, key.public_pem())
    assert checked.data_raw == original.data_raw  # data segment byte-identical
    assert checked.values("datahash") == original.values("datahash")
    assert checked.values("pkgname") == ["rootio-curl"]
    assert checked.values("pkgver") == [PATCHED_VERSION]
    assert checked.values("provides") == [f"cmd:curl={PATCHED_VERSION}", f"curl={UPSTREAM_VERSION}"]
    assert checked.values("replaces") == ["curl"]
    assert checked.values("depend") == original.values("depend")
    entry = index_entry(blob)
    assert entry["C"] == checked.checksum != original.checksum
    assert entry["p"] == f"cmd:curl={PATCHED_VERSION} curl={UPSTREAM_VERSION}"
    assert entry["r"] == "curl"
    assert entry["D"] == "ca-certificates-bundle so:libc.musl-x86_64.so.1"
    assert entry["t"] == "1700000000" and entry["o"] == "curl" and entry["L"] == "curl"
    assert read_apk(blob).control_files()[".post-install"] == b"#!/bin/sh\nexit 0\n"
    with pytest.raises(apk_verify.VerifyError):  # no longer the upstream signer's
        apk_verify.verify_apk(blob, other_key.key_name, other_key.public_pem())


def test_built_apk_data_and_checksums(other_key: ApkKey, upstream: bytes) -> None:
    pkg = read_apk(upstream)
    assert set(pkg.signatures) == {other_key.key_name}
    checked = apk_verify.verify_apk(upstream, other_key.key_name, other_key.public_pem())
    names = [(f.name, f.typeflag, f.mode) for f in checked.files]
    assert names == [
        ("usr/", "5", 0o755),
        ("usr/bin/", "5", 0o755),
        ("usr/bin/curl", "0", 0o755),
        ("usr/share/", "5", 0o755),
        ("usr/share/doc/", "5", 0o755),
        ("usr/share/doc/curl/", "5", 0o755),
        ("usr/share/doc/curl/README", "0", 0o644),
    ]
    readme = checked.files[-1]
    # apk records each file's sha1 from this pax header
    assert readme.pax["APK-TOOLS.checksum.SHA1"] == hashlib.sha1(b"read me\n").hexdigest()
    assert all(f.uid == 0 and f.gid == 0 for f in checked.files)
    assert pkg.checksum == checked.checksum
    assert pkg.first("size") == str(len(b"\x7fELF fake curl\n") + len(b"read me\n"))


def test_verify_apk(key: ApkKey, other_key: ApkKey, upstream: bytes) -> None:
    trusted = load_public_keys({other_key.key_name: other_key.public_pem()})
    assert verify_apk(upstream, trusted).first("pkgname") == "curl"
    with pytest.raises(ApkUntrusted):
        verify_apk(upstream, load_public_keys({key.key_name: key.public_pem()}))
    # a swapped data member keeps the signature valid but breaks datahash
    pkg = read_apk(upstream)
    head = upstream[: len(upstream) - len(pkg.data_gz)]
    swapped = head + gzip.compress(b"\0" * 1024, mtime=0)
    with pytest.raises(ApkUntrusted, match="datahash"):
        verify_apk(swapped, trusted)
    with pytest.raises(apk_verify.VerifyError, match="datahash"):
        apk_verify.verify_apk(swapped, other_key.key_name, other_key.public_pem())


def test_gzip_member_split_and_limit() -> None:
    parts = [b"a" * 10, b"", b"b" * 100_000]
    blob = b"".join(gzip_member(p) for p in parts)
    members = list(iter_gzip_members(blob))
    assert [content for _, content in members] == parts
    assert b"".join(raw for raw, _ in members) == blob
    with pytest.raises(ApkFormatError, match="inflates past"):
        list(iter_gzip_members(gzip_member(b"\0" * 200_000), limit=100_000))
    with pytest.raises(ApkFormatError, match="truncated"):
        list(iter_gzip_members(blob[:-3]))


def test_key_creation_race_keeps_first_key(tmp_path: Path) -> None:
    first = ApkKey.load_or_create(tmp_path, bits=2048)
    # a second creator that lost the race (file appeared after its exists() check)
    (tmp_path / PRIVATE_KEY_FILE).rename(tmp_path / "held")
    real_exists = Path.exists

    def exists_once(self: Path) -> bool:
        if self.name == PRIVATE_KEY_FILE and not real_exists(self):
            (tmp_path / "held").rename(self)
            return False
        return real_exists(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "exists", exists_once)
        second = ApkKey.load_or_create(tmp_path, bits=2048)
    assert second.key_name == first.key_name
    assert sorted(p.name for p in tmp_path.iterdir()) == [PRIVATE_KEY_FILE]
