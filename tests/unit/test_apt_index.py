"""APT index rendering, read back with python-debian's deb822 parser (what apt-ftparchive-
style tools read) and checked for the hashes apt verifies."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import lzma

from debian.deb822 import Packages, Release

from graft.ecosystems.apt.index import (
    ReleaseInfo,
    by_hash_path,
    compressed_variants,
    render_packages,
    render_release,
)

STANZAS = [
    {"Package": "rootio-curl", "Version": "7.88.1-10+deb12u8", "Architecture": "amd64",
     "Depends": "curl (= 7.88.1-10+deb12u8)", "Description": "transitional\n to curl",
     "Filename": "pool/main/r/rootio-curl/x.deb", "Size": "1000", "SHA256": "ab" * 32},
    {"Package": "curl", "Version": "7.88.1-10+deb12u8", "Architecture": "amd64",
     "Filename": "pool/main/c/curl/curl.deb", "Size": "300000", "SHA256": "cd" * 32},
]  # fmt: skip


def test_packages_round_trip_sorted_and_deterministic() -> None:
    data = render_packages(STANZAS)
    assert data == render_packages(list(reversed(STANZAS)))
    parsed = list(Packages.iter_paragraphs(data.decode(), use_apt_pkg=False))
    assert [p["Package"] for p in parsed] == ["curl", "rootio-curl"]
    assert parsed[1]["Depends"] == "curl (= 7.88.1-10+deb12u8)"
    assert parsed[1]["Description"] == "transitional\n to curl"


def test_compressed_variants_decompress_to_the_same_bytes() -> None:
    data = render_packages(STANZAS)
    variants = compressed_variants("main/binary-amd64/Packages", data)
    assert gzip.decompress(variants["main/binary-amd64/Packages.gz"]) == data
    assert lzma.decompress(variants["main/binary-amd64/Packages.xz"]) == data
    assert variants == compressed_variants("main/binary-amd64/Packages", data)  # gzip mtime 0
    path = by_hash_path("main/binary-amd64/Packages.xz", variants["main/binary-amd64/Packages.xz"])
    assert path.startswith("main/binary-amd64/by-hash/SHA256/") and len(path.rsplit("/")[-1]) == 64


def test_release_lists_every_index_with_md5_and_sha256() -> None:
    files = compressed_variants("main/binary-amd64/Packages", render_packages(STANZAS))
    info = ReleaseInfo(
        "Graft",
        "Graft",
        "bookworm",
        "bookworm",
        ["main"],
        ["amd64", "all"],
        valid_for=dt.timedelta(days=7),
    )
    when = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    release = Release(render_release(info, files, when).decode())
    assert release["Codename"] == "bookworm" and release["Acquire-By-Hash"] == "yes"
    assert release["Date"] == "Mon, 23 Nov 2026 12:00:00 UTC"
    assert release["Valid-Until"] == "Mon, 30 Nov 2026 12:00:00 UTC"
    sha = {entry["name"]: entry for entry in release["SHA256"]}
    md5 = {entry["name"]: entry for entry in release["MD5Sum"]}
    for path, data in files.items():
        assert sha[path]["sha256"] == hashlib.sha256(data).hexdigest()
        assert int(sha[path]["size"]) == len(data)
        assert md5[path]["md5sum"] == hashlib.md5(data).hexdigest()
