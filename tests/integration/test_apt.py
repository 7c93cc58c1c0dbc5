"""Real apt-get and dpkg against `graft serve` and a local signed upstream repository."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.apt_client import Apt, dpkg_install, dpkg_root
from tests.fixtures.apt_repo import (
    DebSpec,
    StaticServer,
    UpstreamAptRepo,
    build_deb,
    make_upstream_repo,
)
from tests.integration.graftserver import GraftServer

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("apt-get", "apt-ftparchive", "gpg", "dpkg-deb")),
    reason="apt-get, apt-utils, gnupg and dpkg are needed (make test installs them)",
)

CODENAME = "bookworm"
UPSTREAM = [
    DebSpec("curlish", "7.88.1-10+deb12u8"),
    DebSpec("wgetish", "1.21.3-1+b2", depends="libwget (>= 1.0)"),
    DebSpec("libwget", "1.0-1"),
    DebSpec("needs-curlish", "1.0-1", depends="curlish (>= 7.88.1-10+deb12u8)"),
]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpstreamAptRepo, str]]:
    repo = make_upstream_repo(tmp_path_factory.mktemp("apt-upstream"), CODENAME, UPSTREAM)
    with StaticServer(repo.root) as server:
        yield repo, server.url


@pytest.fixture(scope="module")
def graft(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[UpstreamAptRepo, str]
) -> Iterator[GraftServer]:
    repo, url = upstream
    config = [
        {
            "ecosystem": "debian",
            "name": "debian",
            "url": url,
            "keyring": str(repo.keyring),
            "ttl_seconds": 1,
        }
    ]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-apt") / "data",
        upstream=json.dumps(config),
        usage_flush_seconds=0.2,
        auth_failure_limit=1000,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def patched(graft: GraftServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patched")
    deb = build_deb(
        out, DebSpec("curlish", "7.88.1-10+deb12u8.graft.1", content=b"#!/bin/sh\necho patched\n")
    )
    r = upload(graft, deb, fixes=["CVE-2024-2398"])
    assert r.status_code == 200, r.text
    assert "as curlish and rootio-curlish" in r.text
    return deb


def upload(
    srv: GraftServer, deb: Path, token: str | None = None, **fields: object
) -> httpx.Response:
    with deb.open("rb") as fh:
        return httpx.post(
            f"{srv.url}/debian/{CODENAME}/upload",
            files={"file": (deb.name, fh)},
            data={k: v for k, v in fields.items()},  # type: ignore[misc]
            auth=("rootio", token or srv.token),
            timeout=60,
        )


def test_keyring_is_public(graft: GraftServer) -> None:
    binary = httpx.get(f"{graft.url}/keys/graft-archive-keyring.gpg")
    armored = httpx.get(f"{graft.url}/keys/graft-archive-keyring.asc")
    assert binary.status_code == 200 and binary.content[:1] != b"-"
    assert armored.text.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_apt_get_update_install_patched_and_fallback(
    graft: GraftServer, upstream: tuple[UpstreamAptRepo, str], patched: Path, tmp_path: Path
) -> None:
    repo, url = upstream
    apt = Apt(tmp_path / "apt", graft, url, repo.keyring, graft.token)
    apt.run("apt-get", "update")
    policy = apt.run("apt-cache", "policy", "rootio-curlish", "rootio-wgetish", "curlish").stdout
    assert "Candidate: 7.88.1-10+deb12u8.graft.1" in policy  # patched, under rootio-curlish
    assert "Candidate: 1.21.3-1+b2" in policy  # fallback rootio-wgetish
    show = apt.run("apt-cache", "show", "rootio-wgetish").stdout
    assert "Depends: wgetish (= 1.21.3-1+b2)" in show
    apt.run(
        "apt-get",
        "install",
        "--download-only",
        "-y",
        "rootio-curlish",
        "rootio-wgetish",
        "needs-curlish",
    )
    archives = sorted((tmp_path / "apt" / "cache" / "archives").glob("*.deb"))
    names = {p.name.split("_")[0] for p in archives}
    assert names >= {"rootio-curlish", "rootio-wgetish", "wgetish", "libwget", "needs-curlish"}
    assert "curlish" not in names  # satisfied by rootio-curlish's Provides
    root = dpkg_root(tmp_path / "apt")
    result = dpkg_install(root, archives)
    assert result.returncode == 0, result.stderr
    assert (root / "usr/bin/curlish").read_bytes() == b"#!/bin/sh\necho patched\n"
    assert (root / "usr/bin/wgetish").exists()
    # Every .deb served counted as usage: patched and fallback.
    time.sleep(0.6)
    with sqlite3.connect(graft.data_dir / "graft.db") as db:
        rows = set(
            db.execute(
                "SELECT ecosystem, distribution, package, served FROM library_entries"
            ).fetchall()
        )
    assert ("debian", CODENAME, "curlish", "patched") in rows
    assert ("debian", CODENAME, "wgetish", "fallback") in rows


def test_wrong_token_fails_update_with_401(
    graft: GraftServer, upstream: tuple[UpstreamAptRepo, str], tmp_path: Path
) -> None:
    repo, url = upstream
    apt = Apt(tmp_path / "apt", graft, url, repo.keyring, "graft_wrong")
    result = apt.run("apt-get", "update", ok=False)
    assert result.returncode != 0 or "401" in result.stdout + result.stderr
    assert "401" in result.stdout + result.stderr


def test_signature_is_enforced(
    graft: GraftServer, upstream: tuple[UpstreamAptRepo, str], tmp_path: Path
) -> None:
    repo, url = upstream
    apt = Apt(tmp_path / "apt", graft, url, repo.keyring, graft.token)
    # Trust the upstream key for Graft's repository instead: apt must refuse it.
    shutil.copy(repo.keyring, tmp_path / "apt" / "keys" / "graft.gpg")
    result = apt.run("apt-get", "update", ok=False)
    assert "NO_PUBKEY" in result.stdout + result.stderr or "not signed" in result.stderr


def test_indexes_have_hashes_by_hash_and_etags(graft: GraftServer, patched: Path) -> None:
    base = f"{graft.url}/debian/{CODENAME}/dists/{CODENAME}"
    auth = ("rootio", graft.token)
    release = httpx.get(f"{base}/Release", auth=auth)
    assert release.status_code == 200 and "Acquire-By-Hash: yes" in release.text
    line = next(
        x
        for x in release.text.splitlines()
        if x.endswith("main/binary-amd64/Packages.xz") and len(x.split()[0]) == 64
    )
    digest = line.split()[0]
    by_hash = httpx.get(f"{base}/main/binary-amd64/by-hash/SHA256/{digest}", auth=auth)
    plain = httpx.get(f"{base}/main/binary-amd64/Packages.xz", auth=auth)
    assert by_hash.status_code == 200 and by_hash.content == plain.content
    again = httpx.get(
        f"{base}/InRelease",
        auth=auth,
        headers={"If-None-Match": httpx.get(f"{base}/InRelease", auth=auth).headers["etag"]},
    )
    assert again.status_code == 304
    assert (
        httpx.get(f"{graft.url}/debian/nosuch/dists/nosuch/InRelease", auth=auth).status_code == 404
    )


@pytest.mark.parametrize(
    ("spec", "status", "needle"),
    [
        (DebSpec("curlish", "7.88.1-10+deb12u8"), 422, "must be <upstream version>.graft.<N>"),
        (DebSpec("curlish", "9.9-1.graft.1"), 422, "is not in the upstream debian"),
        (DebSpec("rootio-curlish", "7.88.1-10+deb12u8.graft.2"), 422, "under its own name"),
    ],
)
def test_bad_publishes_are_refused(
    graft: GraftServer, tmp_path: Path, spec: DebSpec, status: int, needle: str
) -> None:
    r = upload(graft, build_deb(tmp_path, spec))
    assert r.status_code == status, r.text
    assert needle in r.text


def test_non_deb_and_republish_and_scope(graft: GraftServer, patched: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.deb"
    junk.write_bytes(b"hello")
    r = upload(graft, junk)
    assert r.status_code == 422 and "not a Debian package" in r.text
    assert upload(graft, patched).status_code == 409
    reader = httpx.post(
        f"{graft.url}/api/orgs/demo/tokens",
        json={"account": "admin", "scopes": ["read"]},
        auth=("x", graft.token),
    ).json()["token"]
    assert upload(graft, patched, token=reader).status_code == 403


def test_cli_publish_deb(graft: GraftServer, tmp_path: Path) -> None:
    deb = build_deb(tmp_path, DebSpec("libwget", "1.0-1.graft.1"))
    proc = graft.cli(
        "publish",
        "deb",
        str(deb),
        "--codename",
        CODENAME,
        "--url",
        graft.url,
        "--token",
        graft.token,
        "--fixes",
        "CVE-2024-9999",
    )
    assert "published libwget 1.0-1.graft.1 for debian bookworm" in proc.stdout
    packages = httpx.get(
        f"{graft.url}/debian/{CODENAME}/dists/{CODENAME}/main/binary-amd64/Packages",
        auth=("rootio", graft.token),
    ).text
    assert "Package: rootio-libwget\nVersion: 1.0-1.graft.1" in packages
    assert "Provides: libwget (= 1.0-1)" in packages
    bad = graft.cli(
        "publish",
        "deb",
        str(deb),
        "--codename",
        CODENAME,
        "--url",
        graft.url,
        "--token",
        graft.token,
        check=False,
    )
    assert bad.returncode == 1 and "already exists" in bad.stderr


def test_untrusted_upstream_keeps_the_last_good_state(
    tmp_path: Path, upstream: tuple[UpstreamAptRepo, str]
) -> None:
    repo, url = upstream
    config = [
        {
            "ecosystem": "debian",
            "name": "debian",
            "url": url,
            "keyring": str(repo.keyring),
            "ttl_seconds": 0,
        }
    ]
    srv = GraftServer(tmp_path / "g", upstream=json.dumps(config)).start()
    auth = ("rootio", srv.token)
    packages = f"{srv.url}/debian/{CODENAME}/dists/{CODENAME}/main/binary-amd64/Packages"
    inrelease = repo.root / "dists" / CODENAME / "InRelease"
    good = inrelease.read_bytes()
    try:
        before = httpx.get(packages, auth=auth)
        assert before.status_code == 200 and b"rootio-wgetish" in before.content
        # Someone re-signs the upstream Release with a key that is not in the keyring.
        other = make_upstream_repo(tmp_path / "evil", CODENAME, [DebSpec("evil", "1.0-1")])
        inrelease.write_bytes((other.root / "dists" / CODENAME / "InRelease").read_bytes())
        after = httpx.get(packages, auth=auth)
        assert after.status_code == 200 and after.content == before.content
        assert "failed verification; serving the last good state" in srv.log()
    finally:
        inrelease.write_bytes(good)
        srv.stop()
