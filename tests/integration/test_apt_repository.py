"""More of the APT repositories with the real apt-get and dpkg: Ubuntu with zstd packages,
every index compression, a tampering proxy in front of Graft, archive key rotation with an
overlap, and Valid-Until."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import json
import shutil
import sqlite3
import threading
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

JAMMY = "jammy"
BOOKWORM = "bookworm"
UBUNTU_PACKAGES = [
    DebSpec("zstdish", "1.5.2-1ubuntu1", compression="zstd"),
    DebSpec("openish", "3.0.2-0ubuntu1.10", compression="zstd"),
]
DEBIAN_PACKAGES = [DebSpec("curlish", "7.88.1-10+deb12u8"), DebSpec("wgetish", "1.21.3-1")]
KEY_RECHECK_SECONDS = 5.5  # graft.ecosystems.apt.signing.ArchiveKeyring checks every 5 s


@pytest.fixture(scope="module")
def ubuntu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpstreamAptRepo, str]]:
    repo = make_upstream_repo(tmp_path_factory.mktemp("ubuntu"), JAMMY, UBUNTU_PACKAGES)
    with StaticServer(repo.root) as server:
        yield repo, server.url


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpstreamAptRepo, str]]:
    repo = make_upstream_repo(tmp_path_factory.mktemp("debian"), BOOKWORM, DEBIAN_PACKAGES)
    with StaticServer(repo.root) as server:
        yield repo, server.url


def upstreams(**repos: tuple[UpstreamAptRepo, str]) -> str:
    return json.dumps(
        [
            {"ecosystem": distro, "name": distro, "url": url, "keyring": str(repo.keyring)}
            for distro, (repo, url) in repos.items()
        ]
    )


@pytest.fixture(scope="module")
def graft(
    tmp_path_factory: pytest.TempPathFactory,
    ubuntu: tuple[UpstreamAptRepo, str],
    debian: tuple[UpstreamAptRepo, str],
) -> Iterator[GraftServer]:
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-apt2") / "data",
        upstream=upstreams(ubuntu=ubuntu, debian=debian),
        auth_failure_limit=1000,
    ).start()
    yield srv
    srv.stop()


def upload(srv: GraftServer, distro: str, codename: str, deb: Path) -> httpx.Response:
    with deb.open("rb") as fh:
        return httpx.post(
            f"{srv.url}/{distro}/{codename}/upload",
            files={"file": (deb.name, fh)},
            data={"fixes": "CVE-2024-0001"},
            auth=("rootio", srv.token),
            timeout=60,
        )


def test_ubuntu_zstd_packages_patched_and_fallback(
    graft: GraftServer, ubuntu: tuple[UpstreamAptRepo, str], tmp_path: Path
) -> None:
    repo, url = ubuntu
    deb = build_deb(
        tmp_path,
        DebSpec("zstdish", "1.5.2-1ubuntu1.graft.1", content=b"patched\n", compression="zstd"),
    )
    r = upload(graft, "ubuntu", JAMMY, deb)
    assert r.status_code == 200, r.text
    apt = Apt(tmp_path / "apt", graft, url, repo.keyring, graft.token, codename=JAMMY,
              distro="ubuntu")  # fmt: skip
    apt.run("apt-get", "update")
    policy = apt.run("apt-cache", "policy", "rootio-zstdish", "rootio-openish").stdout
    assert "Candidate: 1.5.2-1ubuntu1.graft.1" in policy
    assert "Candidate: 3.0.2-0ubuntu1.10" in policy
    apt.run("apt-get", "install", "--download-only", "-y", "rootio-zstdish", "rootio-openish")
    archives = sorted((tmp_path / "apt" / "cache" / "archives").glob("*.deb"))
    assert {p.name.split("_")[0] for p in archives} == {
        "rootio-zstdish",
        "rootio-openish",
        "openish",
    }
    root = dpkg_root(tmp_path / "apt")
    result = dpkg_install(root, archives)
    assert result.returncode == 0, result.stderr
    assert (root / "usr/bin/zstdish").read_bytes() == b"patched\n"
    assert (root / "usr/bin/openish").read_bytes() == b"#!/bin/sh\necho upstream\n"


@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_apt_reads_every_index_compression(
    graft: GraftServer, debian: tuple[UpstreamAptRepo, str], tmp_path: Path, compression: str
) -> None:
    repo, url = debian
    apt = Apt(tmp_path / "apt", graft, url, repo.keyring, graft.token)
    time.sleep(0.2)  # the access log is written every 50 ms: let earlier lines land first
    mark = len(graft.log())
    apt.run("apt-get", "update", options={"Acquire::CompressionTypes::Order::": compression})
    time.sleep(0.2)
    base = f"{graft.url}/debian/{BOOKWORM}/dists/{BOOKWORM}"
    release = httpx.get(f"{base}/Release", auth=("", graft.token)).text
    by_digest = {
        line.split()[0]: line.split()[2]
        for line in release.split("SHA256:")[1].splitlines()
        if line.strip()
    }
    fetched = [
        json.loads(line)["path"].rsplit("/", 1)[-1]
        for line in graft.log()[mark:].splitlines()
        if line.startswith("{") and "binary-amd64" in line
    ]
    # apt fetches the index by hash: the hash says which file it chose
    assert [by_digest.get(name, name) for name in fetched] == [
        f"main/binary-amd64/Packages.{compression}"
    ]
    policy = apt.run("apt-cache", "policy", "rootio-wgetish").stdout
    assert "Candidate: 1.21.3-1" in policy
    # the uncompressed index is the same text
    plain = httpx.get(f"{base}/main/binary-amd64/Packages", auth=("", graft.token))
    assert b"Package: rootio-wgetish\nVersion: 1.21.3-1\n" in plain.content


class TamperingProxy:
    """Forwards to Graft and changes one response on the way: the client must notice."""

    def __init__(self, target: str, suffix: str, change: bytes, into: bytes) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                r = httpx.get(target + self.path, headers=headers)
                body = r.content
                if self.path.endswith(suffix) and r.status_code == 200:
                    assert change in body, "nothing to tamper with"
                    body = body.replace(change, into, 1)
                    outer.tampered += 1
                self.send_response(r.status_code)
                for key in ("content-type", "etag", "www-authenticate"):
                    if key in r.headers:
                        self.send_header(key, r.headers[key])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.tampered = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    ("suffix", "change", "into", "apt_says"),
    [
        # a Packages entry changed in transit: its hash no longer matches the signed Release
        ("binary-amd64/Packages", b"Version: 1.21.3-1", b"Version: 9.21.3-1", "Hash Sum mismatch"),
        # the signed Release itself changed: the signature no longer verifies
        ("/InRelease", b"Suite: bookworm", b"Suite: bookwurm", "BADSIG"),
    ],
)
def test_a_tampered_index_is_rejected_by_apt(
    graft: GraftServer,
    debian: tuple[UpstreamAptRepo, str],
    tmp_path: Path,
    suffix: str,
    change: bytes,
    into: bytes,
    apt_says: str,
) -> None:
    repo, url = debian
    proxy = TamperingProxy(graft.url, suffix, change, into)
    try:
        apt = Apt(tmp_path / "apt", graft, url, repo.keyring, graft.token, graft_url=proxy.url)
        # Only the uncompressed index, so the proxy can edit it in place.
        options = {"Acquire::CompressionTypes::Order::": "uncompressed", "Acquire::By-Hash": "no"}
        for kind in ("xz", "gz", "lz4", "bz2", "lzma", "zst"):
            options[f"Acquire::CompressionTypes::{kind}"] = "false"
        result = apt.run("apt-get", "update", ok=False, options=options)
        output = result.stdout + result.stderr
        assert proxy.tampered >= 1, output
        assert apt_says in output, output
        policy = apt.run("apt-cache", "policy", "rootio-wgetish").stdout
        assert "Candidate: 9.21.3-1" not in policy
    finally:
        proxy.close()


def test_key_rotation_keeps_the_old_key_signing_during_the_overlap(
    tmp_path: Path, debian: tuple[UpstreamAptRepo, str]
) -> None:
    repo, url = debian
    srv = GraftServer(tmp_path / "g", upstream=upstreams(debian=debian)).start()
    try:
        old_client = Apt(tmp_path / "old", srv, url, repo.keyring, srv.token)
        old_client.run("apt-get", "update")
        rotated = json.loads(srv.cli("key", "rotate", "apt", "--overlap", "1h", "--json").stdout)
        assert rotated["retiring"] and rotated["current"] != rotated["retiring"]
        time.sleep(KEY_RECHECK_SECONDS)
        inrelease = httpx.get(
            f"{srv.url}/debian/{BOOKWORM}/dists/{BOOKWORM}/InRelease", auth=("", srv.token)
        ).text
        assert inrelease.count("-----BEGIN PGP SIGNATURE-----") == 1
        # The published keyring now holds both keys; a client with only the old one still
        # updates, and so does one that fetched the new keyring.
        old_client.run("apt-get", "update")
        new_client = Apt(tmp_path / "new", srv, url, repo.keyring, srv.token)
        new_client.run("apt-get", "update")
        assert (
            "Candidate: 1.21.3-1" in new_client.run("apt-cache", "policy", "rootio-wgetish").stdout
        )
        # Rotating with no overlap: the previous keys stop signing at once.
        srv.cli("key", "rotate", "apt", "--overlap", "0")
        time.sleep(KEY_RECHECK_SECONDS)
        result = old_client.run("apt-get", "update", ok=False)
        assert "NO_PUBKEY" in result.stdout + result.stderr
        Apt(tmp_path / "newest", srv, url, repo.keyring, srv.token).run("apt-get", "update")
    finally:
        srv.stop()


def _project_secret(secret: Path, source: Path, version: str) -> None:
    """Lay out `source`'s files in `secret` the way the kubelet projects a Secret volume
    (`name -> ..data/name`, `..data -> ..<version>`), or swap in a new version as the kubelet
    does on an update: write the new directory, then replace `..data` with one rename."""
    target = secret / f"..{version}"
    shutil.copytree(source, target)
    tmp_link = secret / "..data_tmp"
    tmp_link.symlink_to(target.name)
    tmp_link.rename(secret / "..data")
    for item in source.iterdir():
        link = secret / item.name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / item.name)


def test_key_rotation_through_an_updated_secret_reaches_a_running_server(
    tmp_path: Path, debian: tuple[UpstreamAptRepo, str]
) -> None:
    """deploy.md's procedure: rotate against a copy of the keys, update the read-only Secret;
    the running replica picks up both keys without a restart."""
    repo, url = debian
    keys = tmp_path / "keys-copy"
    GraftServer(tmp_path / "init", keys_path=keys).cli("key", "init")
    secret = tmp_path / "secret"
    secret.mkdir()
    _project_secret(secret, keys, "v1")
    srv = GraftServer(tmp_path / "g", upstream=upstreams(debian=debian), keys_path=secret)
    srv.start()
    try:
        old_client = Apt(tmp_path / "old", srv, url, repo.keyring, srv.token)
        old_client.run("apt-get", "update")
        keyring_url = f"{srv.url}/keys/graft-archive-keyring.gpg"
        old_keyring = httpx.get(keyring_url).content
        rotated = json.loads(
            GraftServer(tmp_path / "ops", keys_path=keys)
            .cli("key", "rotate", "apt", "--overlap", "1h", "--json")
            .stdout
        )
        _project_secret(secret, keys, "v2")
        shutil.rmtree(secret / "..v1")  # the kubelet removes the old version
        time.sleep(KEY_RECHECK_SECONDS)
        # both keys are published now, the new one first
        new_keyring = httpx.get(keyring_url).content
        assert new_keyring.endswith(old_keyring) and len(new_keyring) > len(old_keyring)
        shown = json.loads(srv.cli("key", "show", "--json").stdout)
        assert rotated["current"] == shown["current"] != rotated["retiring"]
        old_client.run("apt-get", "update")  # the old key still signs during the overlap
        Apt(tmp_path / "new", srv, url, repo.keyring, srv.token).run("apt-get", "update")
    finally:
        srv.stop()


def test_valid_until_is_set_and_apt_accepts_it(
    tmp_path: Path, debian: tuple[UpstreamAptRepo, str]
) -> None:
    repo, url = debian
    srv = GraftServer(
        tmp_path / "g", upstream=upstreams(debian=debian), apt_release_valid_seconds=7200
    ).start()
    try:
        release = httpx.get(
            f"{srv.url}/debian/{BOOKWORM}/dists/{BOOKWORM}/Release", auth=("", srv.token)
        ).text
        fields = dict(line.split(": ", 1) for line in release.splitlines() if ": " in line)
        date = email.utils.parsedate_to_datetime(fields["Date"].replace("UTC", "+0000"))
        until = email.utils.parsedate_to_datetime(fields["Valid-Until"].replace("UTC", "+0000"))
        assert until - date == dt.timedelta(hours=2)
        Apt(tmp_path / "apt", srv, url, repo.keyring, srv.token).run("apt-get", "update")
    finally:
        srv.stop()


def test_a_newer_upstream_release_is_listed_again_after_a_patch(tmp_path: Path) -> None:
    """rootio-X follows upstream once it moves past the version the patched build was for."""
    repo = make_upstream_repo(tmp_path / "up", BOOKWORM, DEBIAN_PACKAGES)
    with StaticServer(repo.root) as server:
        config = json.dumps(
            [{"ecosystem": "debian", "name": "debian", "url": server.url,
              "keyring": str(repo.keyring), "ttl_seconds": 0}]
        )  # fmt: skip
        srv = GraftServer(tmp_path / "g", upstream=config).start()
        try:
            deb = build_deb(tmp_path, DebSpec("curlish", "7.88.1-10+deb12u8.graft.1"))
            assert upload(srv, "debian", BOOKWORM, deb).status_code == 200
            apt = Apt(tmp_path / "apt", srv, server.url, repo.keyring, srv.token)
            apt.run("apt-get", "update")
            policy = apt.run("apt-cache", "policy", "rootio-curlish").stdout
            assert "Candidate: 7.88.1-10+deb12u8.graft.1" in policy
            assert "7.88.1-10+deb12u8 " not in policy.replace("\n", " ")  # fallback gave way
            # the distribution publishes its own fix
            repo.publish([DebSpec("curlish", "7.88.1-10+deb12u9")])  # both stay listed
            apt.run("apt-get", "update")
            policy = apt.run("apt-cache", "policy", "rootio-curlish").stdout
            assert "Candidate: 7.88.1-10+deb12u9" in policy  # the new fallback wins
            assert "7.88.1-10+deb12u8.graft.1" in policy  # the patched build is still there
            show = apt.run("apt-cache", "show", "rootio-curlish=7.88.1-10+deb12u9").stdout
            assert "Depends: curlish (= 7.88.1-10+deb12u9)" in show
        finally:
            srv.stop()


def test_downloads_record_the_source_package_of_each_binary(tmp_path: Path) -> None:
    """Debian advisories name source packages: the library keeps each binary's source (and the
    source version of a binNMU) from the upstream Packages stanza."""
    packages = [
        DebSpec("libcurlish4", "7.88.1-10+deb12u8", source="curlish"),
        DebSpec("libbinish1", "2.0-1+b1", source="binish (2.0-1)"),  # a binNMU
        DebSpec("wgetish", "1.21.3-1"),  # no Source field: its own source
    ]
    repo = make_upstream_repo(tmp_path / "up", BOOKWORM, packages)
    with StaticServer(repo.root) as server:
        config = json.dumps(
            [{"ecosystem": "debian", "name": "debian", "url": server.url,
              "keyring": str(repo.keyring)}]
        )  # fmt: skip
        srv = GraftServer(tmp_path / "g", upstream=config, usage_flush_seconds=0.2).start()
        try:
            auth = ("rootio", srv.token)
            base = f"{srv.url}/debian/{BOOKWORM}"
            index = httpx.get(f"{base}/dists/{BOOKWORM}/main/binary-amd64/Packages", auth=auth)
            assert index.status_code == 200
            filenames = [
                line.split(": ", 1)[1]
                for line in index.text.splitlines()
                if line.startswith("Filename: ")
            ]
            assert len(filenames) == 3
            for filename in filenames:
                assert httpx.get(f"{base}/{filename}", auth=auth).status_code == 200
            time.sleep(0.8)
            with sqlite3.connect(srv.data_dir / "graft.db") as db:
                rows = set(
                    db.execute(
                        "SELECT package, version, source, source_version FROM library_entries"
                    )
                )
        finally:
            srv.stop()
    assert rows == {
        ("libcurlish4", "7.88.1-10+deb12u8", "curlish", None),
        ("libbinish1", "2.0-1+b1", "binish", "2.0-1"),
        ("wgetish", "1.21.3-1", None, None),
    }
