"""APT index rendering, read back with python-debian's deb822 parser (what apt-ftparchive-
style tools read) and checked for the hashes apt verifies."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import lzma

from debian.deb822 import Packages, Release

from graft.ecosystems.apt.index import (
    IndexFile,
    ReleaseInfo,
    by_hash_path,
    make_chunk,
    make_chunks,
    packages_files,
    render_packages,
    render_release,
    render_stanza,
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


def _items(stanzas: list[dict[str, str]]) -> list[tuple[str, bytes]]:
    return [(st["Package"], (render_stanza(st) + "\n").encode()) for st in stanzas]


MANY = [
    {"Package": f"rootio-pkg{i:04d}", "Version": f"1.{i}-1", "Architecture": "amd64",
     "Filename": f"pool/main/r/rootio-pkg{i:04d}/x.deb", "Size": "100", "SHA256": "ab" * 32}
    for i in range(50)
]  # fmt: skip


def test_chunked_files_decompress_as_one_file() -> None:
    """gzip members in a row and one xz stream of many blocks: each reads back as the whole
    file, with one decoder (apt reads only the first xz stream, so there must be one)."""
    chunks = make_chunks(_items(MANY), size=7)
    assert len(chunks) == 8
    files = packages_files("main/binary-amd64/Packages", chunks)
    plain = files["main/binary-amd64/Packages"].data()
    assert plain == render_packages(MANY)
    assert gzip.decompress(files["main/binary-amd64/Packages.gz"].data()) == plain
    xz = files["main/binary-amd64/Packages.xz"].data()
    assert lzma.decompress(xz) == plain
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)  # stops after one stream
    assert decoder.decompress(xz) == plain and decoder.eof and decoder.unused_data == b""
    parsed = list(Packages.iter_paragraphs(plain.decode(), use_apt_pkg=False))
    assert [p["Package"] for p in parsed] == [s["Package"] for s in MANY]
    # deterministic: the same stanzas give the same bytes and hashes
    again = packages_files("main/binary-amd64/Packages", make_chunks(_items(MANY), size=7))
    assert {k: v.sha256 for k, v in again.items()} == {k: v.sha256 for k, v in files.items()}


def test_empty_index_is_valid() -> None:
    files = packages_files("main/binary-all/Packages", [])
    assert files["main/binary-all/Packages"].data() == b""
    assert gzip.decompress(files["main/binary-all/Packages.gz"].data()) == b""
    assert lzma.decompress(files["main/binary-all/Packages.xz"].data()) == b""


def test_chunk_without_drops_only_those_stanzas() -> None:
    chunk = make_chunk(_items(MANY[:5]))
    smaller = chunk.without({"rootio-pkg0001", "rootio-pkg0003"})
    assert smaller.keys == ("rootio-pkg0000", "rootio-pkg0002", "rootio-pkg0004")
    assert smaller.text == render_packages([MANY[0], MANY[2], MANY[4]])
    assert gzip.decompress(smaller.gz) == smaller.text
    xz = packages_files("P", [smaller])["P.xz"].data()
    assert lzma.decompress(xz) == smaller.text


def test_index_file_hashes_cover_every_part() -> None:
    f = IndexFile.of([b"abc", b"", b"def"])
    assert f.size == 6 and f.data() == b"abcdef"
    assert f.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    assert f.md5 == hashlib.md5(b"abcdef").hexdigest()
    path = by_hash_path("main/binary-amd64/Packages.xz", f.sha256)
    assert path == f"main/binary-amd64/by-hash/SHA256/{f.sha256}"


def test_release_lists_every_index_with_md5_and_sha256() -> None:
    files = packages_files("main/binary-amd64/Packages", make_chunks(_items(STANZAS)))
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
    for path, index_file in files.items():
        data = index_file.data()
        assert sha[path]["sha256"] == hashlib.sha256(data).hexdigest()
        assert int(sha[path]["size"]) == len(data)
        assert md5[path]["md5sum"] == hashlib.md5(data).hexdigest()
