"""Alpine repositories through `graft serve`, checked with the independent verifier in
tests/fixtures/apk_verify.py (apk itself is not packaged in the registries this project can
use; the README says how it was checked by hand against apk-tools)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graft.ecosystems.apk.apkindex import build_signed_index, render_apkindex
from graft.ecosystems.apk.apks import build_apk, index_entry
from graft.ecosystems.apk.keys import ApkKey
from tests.fixtures.apk_verify import VerifyError, verify_apk, verify_index
from tests.fixtures.apt_repo import StaticServer
from tests.integration.graftserver import GraftServer

RELEASE = "3.20"
ARCH = "x86_64"


def apk(
    key: ApkKey,
    name: str,
    version: str,
    depends: tuple[str, ...] = (),
    content: bytes = b"upstream\n",
    origin: str = "",
) -> bytes:
    return build_apk(
        {
            "pkgname": name,
            "pkgver": version,
            "arch": ARCH,
            "pkgdesc": f"{name} for tests",
            "url": "https://example.com",
            "license": "MIT",
            "origin": origin or name,
            "depend": list(depends),
        },
        {f"usr/bin/{name}": content},
        key,
    )


UPSTREAM = (
    ("curl", "8.9.1-r1", ("libcurl",)),
    ("libcurl", "8.9.1-r1", ()),
    ("zlib", "1.3.1-r1", ()),
)
ORIGINS = {"libcurl": "curl"}  # a subpackage of curl, as in Alpine


def write_upstream(base: Path, packages: tuple[tuple[str, str, tuple[str, ...]], ...]) -> Path:
    """A signed upstream Alpine repository under `base/repo`; the folder of its keys."""
    key = ApkKey.load_or_create(base / "upstream-private", name_prefix="alpine-devel")
    keys = base / "keys"
    keys.mkdir(exist_ok=True)
    (keys / key.key_name).write_bytes(key.public_pem())
    folder = base / "repo" / f"v{RELEASE}" / "main" / ARCH
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, version, deps in packages:
        blob = apk(key, name, version, deps, origin=ORIGINS.get(name, ""))
        (folder / f"{name}-{version}.apk").write_bytes(blob)
        entries.append(index_entry(blob))
    (folder / "APKINDEX.tar.gz").write_bytes(
        build_signed_index(render_apkindex(entries), "upstream main", key)
    )
    return keys


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("alpine-upstream")
    keys = write_upstream(base, UPSTREAM)
    with StaticServer(base / "repo") as server:
        yield server.url, keys


@pytest.fixture(scope="module")
def graft(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[str, Path]
) -> Iterator[GraftServer]:
    url, keys = upstream
    config = [{"ecosystem": "alpine", "name": "alpine", "url": url, "keyring": str(keys)}]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-apk") / "data",
        upstream=json.dumps(config),
        usage_flush_seconds=0.2,
    ).start()
    yield srv
    srv.stop()


def graft_key(srv: GraftServer) -> tuple[str, bytes]:
    # What a Dockerfile does: ask the key's file name, fetch it into /etc/apk/keys/<name>.
    name = httpx.get(f"{srv.url}/keys/apk-key-name").text.strip()
    assert name.startswith("graft-") and name.endswith(".rsa.pub")
    r = httpx.get(f"{srv.url}/keys/{name}")
    assert r.status_code == 200 and r.content.startswith(b"-----BEGIN PUBLIC KEY-----")
    return name, r.content


def index(srv: GraftServer) -> list[dict[str, str]]:
    name, pem = graft_key(srv)
    r = httpx.get(f"{srv.url}/alpine/{RELEASE}/{ARCH}/APKINDEX.tar.gz", auth=("root", srv.token))
    assert r.status_code == 200
    return verify_index(r.content, name, pem).packages


def upload(srv: GraftServer, blob: bytes, filename: str, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/alpine/{RELEASE}/upload",
        files={"file": (filename, blob)},
        data=fields,
        auth=("root", srv.token),
        timeout=60,
    )


def test_fallbacks_are_listed_signed_and_downloadable(graft: GraftServer) -> None:
    packages = {p["P"]: p for p in index(graft)}
    assert set(packages) == {"rootio-curl", "rootio-libcurl", "rootio-zlib"}
    assert packages["rootio-curl"]["V"] == "8.9.1-r1"
    assert packages["rootio-curl"]["D"] == "curl=8.9.1-r1"
    # apk 2.14 never downloads a package of installed size 0: then the request that tells the
    # organization what to patch would never reach Graft
    assert int(packages["rootio-curl"]["I"]) > 0
    name, pem = graft_key(graft)
    r = httpx.get(
        f"{graft.url}/alpine/{RELEASE}/{ARCH}/rootio-curl-8.9.1-r1.apk", auth=("root", graft.token)
    )
    assert r.status_code == 200
    verified = verify_apk(r.content, name, pem)
    assert verified.checksum == packages["rootio-curl"]["C"]


def test_patched_build_replaces_the_fallback(graft: GraftServer, tmp_path: Path) -> None:
    builder = ApkKey.load_or_create(tmp_path / "builder", name_prefix="builder")
    blob = apk(builder, "curl", "8.9.1-r10071", ("libcurl",), b"patched\n")
    r = upload(graft, blob, "curl-8.9.1-r10071.apk", fixes="CVE-2024-8096")
    assert r.status_code == 200, r.text
    assert "as curl and rootio-curl" in r.text
    packages = {(p["P"], p["V"]): p for p in index(graft)}
    assert ("curl", "8.9.1-r10071") in packages
    rootio = packages[("rootio-curl", "8.9.1-r10071")]
    assert rootio["p"] == "curl=8.9.1-r1"
    assert ("rootio-curl", "8.9.1-r1") not in packages  # the fallback gave way
    name, pem = graft_key(graft)
    for filename in ("curl-8.9.1-r10071.apk", "rootio-curl-8.9.1-r10071.apk"):
        got = httpx.get(
            f"{graft.url}/alpine/{RELEASE}/{ARCH}/{filename}", auth=("root", graft.token)
        )
        verified = verify_apk(got.content, name, pem)  # re-signed with Graft's key
        assert verified.values("pkgver") == ["8.9.1-r10071"]
        assert [f.data for f in verified.files if f.name == "usr/bin/curl"] == [b"patched\n"]
    with pytest.raises(VerifyError):  # not the builder's key any more
        verify_apk(got.content, builder.key_name, builder.public_pem())
    assert upload(graft, blob, "curl-8.9.1-r10071.apk").status_code == 409
    time.sleep(0.6)
    with sqlite3.connect(graft.data_dir / "graft.db") as db:
        rows = set(
            db.execute("SELECT ecosystem, distribution, package, served FROM library_entries")
        )
    assert ("alpine", RELEASE, "curl", "patched") in rows
    assert ("alpine", RELEASE, "curl", "fallback") in rows


def test_cli_publish_apk(graft: GraftServer, tmp_path: Path) -> None:
    builder = ApkKey.load_or_create(tmp_path / "builder", name_prefix="builder")
    path = tmp_path / "zlib-1.3.1-r10071.apk"
    path.write_bytes(apk(builder, "zlib", "1.3.1-r10071"))
    proc = graft.cli(
        "publish",
        "apk",
        str(path),
        "--release",
        RELEASE,
        "--url",
        graft.url,
        "--token",
        graft.token,
        "--fixes",
        "CVE-2023-45853",
    )
    assert "published zlib 1.3.1-r10071 for Alpine v3.20" in proc.stdout
    assert ("rootio-zlib", "1.3.1-r10071") in {(p["P"], p["V"]) for p in index(graft)}


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        ("8.4.0-r0.root.io.1", "not a valid apk version"),
        ("1.3.1~0abc-r10071", "not a valid apk version for apk-tools 2.14"),
        ("8.9.1-r2", "pkgrel is the upstream pkgrel followed by 007"),
        ("9.9.9-r10071", "not in the upstream Alpine"),
    ],
)
def test_bad_versions_are_refused(
    graft: GraftServer, tmp_path: Path, version: str, needle: str
) -> None:
    builder = ApkKey.load_or_create(tmp_path / "b", name_prefix="b")
    r = upload(graft, apk(builder, "zlib", version), f"zlib-{version}.apk")
    assert r.status_code == 422 and needle in r.text


def test_garbage_wrong_token_unknown_release(graft: GraftServer) -> None:
    r = upload(graft, b"not an apk", "x.apk")
    assert r.status_code in (422, 400), r.text
    bad = httpx.get(
        f"{graft.url}/alpine/{RELEASE}/{ARCH}/APKINDEX.tar.gz", auth=("root", "graft_x")
    )
    assert bad.status_code == 401
    assert bad.text.endswith("token\n")  # whole lines for clients that print the body
    unknown = httpx.get(
        f"{graft.url}/alpine/2.0/{ARCH}/APKINDEX.tar.gz", auth=("root", graft.token)
    )
    assert unknown.status_code == 404 and "unknown Alpine release" in unknown.text


def test_the_index_revalidates_by_date_as_apk_does(graft: GraftServer) -> None:
    url = f"{graft.url}/alpine/{RELEASE}/{ARCH}/APKINDEX.tar.gz"
    first = httpx.get(url, auth=("root", graft.token))
    since = first.headers["last-modified"]
    again = httpx.get(url, auth=("root", graft.token), headers={"If-Modified-Since": since})
    assert again.status_code == 304 and again.content == b""
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    changed = httpx.get(url, auth=("root", graft.token), headers={"If-Modified-Since": old})
    assert changed.status_code == 200 and changed.content == first.content


def test_a_newer_upstream_release_is_listed_again_after_a_patch(tmp_path: Path) -> None:
    """rootio-curl follows upstream once it moves past the version the patch was for."""
    keys = write_upstream(tmp_path / "up", UPSTREAM)
    with StaticServer(tmp_path / "up" / "repo") as server:
        config = [
            {"ecosystem": "alpine", "name": "alpine", "url": server.url, "keyring": str(keys),
             "ttl_seconds": 0}
        ]  # fmt: skip
        srv = GraftServer(tmp_path / "g", upstream=json.dumps(config)).start()
        try:
            builder = ApkKey.load_or_create(tmp_path / "builder", name_prefix="builder")
            patched = apk(builder, "curl", "8.9.1-r10071", ("libcurl",), b"patched\n")
            assert upload(srv, patched, "curl-8.9.1-r10071.apk").status_code == 200
            before = {(p["P"], p["V"]) for p in index(srv)}
            assert ("rootio-curl", "8.9.1-r10071") in before
            assert ("rootio-curl", "8.9.1-r1") not in before
            moved = tuple(
                ("curl", "8.9.2-r0", deps) if name == "curl" else (name, version, deps)
                for name, version, deps in UPSTREAM
            )
            write_upstream(tmp_path / "up", moved)
            after = {(p["P"], p["V"]) for p in index(srv)}
            assert ("rootio-curl", "8.9.2-r0") in after  # the newer fallback: apk upgrades to it
            assert ("rootio-curl", "8.9.1-r10071") in after
        finally:
            srv.stop()


def test_downloads_record_the_origin_package(graft: GraftServer) -> None:
    """Alpine's advisories name origin packages: a subpackage's entry keeps its origin."""
    auth = ("root", graft.token)
    r = httpx.get(f"{graft.url}/alpine/{RELEASE}/{ARCH}/rootio-libcurl-8.9.1-r1.apk", auth=auth)
    assert r.status_code == 200
    # curl is its own origin (its fallback gave way if an earlier test patched curl: then the
    # patched build's entry is there)
    httpx.get(f"{graft.url}/alpine/{RELEASE}/{ARCH}/rootio-curl-8.9.1-r1.apk", auth=auth)
    time.sleep(0.6)
    with sqlite3.connect(graft.data_dir / "graft.db") as db:
        rows = set(
            db.execute(
                "SELECT package, source, source_version FROM library_entries"
                " WHERE package IN ('libcurl', 'curl')"
            )
        )
    assert rows == {("libcurl", "curl", None), ("curl", None, None)}
