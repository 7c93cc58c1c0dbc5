"""Two `graft serve` replicas sharing PostgreSQL and an S3-compatible object store (moto's
standalone server, started here), as behind a load balancer: what is published on one is
installed through the other by real clients (pip, twine, apt, skopeo), downloads go by
presigned redirect to the object store, a revocation on one is refused by the other at once,
a replica killed in the middle of an upload or a pull-through leaves nothing partial and the
client's retry succeeds, and one upstream download serves both replicas."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from graft.blobs.s3 import S3BlobStore
from tests.conftest import PG_ADMIN_URL, _pg_admin
from tests.fixtures.apt_client import Apt
from tests.fixtures.apt_repo import (
    DebSpec,
    StaticServer,
    UpstreamAptRepo,
    build_deb,
    make_upstream_repo,
)
from tests.fixtures.clients import isolated_env
from tests.fixtures.dists import make_wheel, sha256_file
from tests.fixtures.oci import make_image, write_layout
from tests.fixtures.s3 import MotoServer
from tests.fixtures.simple_index import SimpleIndex
from tests.integration.graftserver import GraftServer, graft_env, run_cli

BIN = Path(sys.executable).parent
BOOKWORM = "bookworm"
SKOPEO = shutil.which("skopeo")
BIG = 12 << 20  # more than two multipart parts of 5 MiB
MAVEN = bool(shutil.which("mvn") and shutil.which("javac"))


def _maven_tree(root: Path) -> Path:
    """An upstream Maven repository holding com.example:demo-lib:1.0 (built with javac)."""
    from tests.fixtures.maven_build import java_jar
    from tests.fixtures.maven_repo import write_artifact

    padding = random.Random(10).randbytes(8 << 10).hex()  # the jar is above the redirect size
    source = {"demo/Hello.java": "package demo; public class Hello { public static int n() "
              f'{{ return 7; }} static String pad = "{padding}"; }}'}  # fmt: skip
    write_artifact(root, "com.example", "demo-lib", "1.0", jar=java_jar(root / "javac", source))
    return root


@dataclass
class Cluster:
    a: GraftServer
    b: GraftServer
    moto: MotoServer
    bucket: str
    pypi: SimpleIndex
    debian: tuple[UpstreamAptRepo, str]
    token: str
    settings: dict[str, object]

    def store(self) -> S3BlobStore:
        s = self.settings
        return S3BlobStore(
            self.bucket,
            endpoint_url=str(s["s3_endpoint_url"]),
            region=str(s["s3_region"]),
            access_key_id=str(s["s3_access_key_id"]),
            secret_access_key=str(s["s3_secret_access_key"]),
            addressing_style="path",
        )

    def objects(self, prefix: str = "") -> list[str]:
        listed = self.moto.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def uploads(self) -> list[str]:
        listed = self.moto.client().list_multipart_uploads(Bucket=self.bucket)
        return [u["Key"] for u in listed.get("Uploads", [])]


def wait_until(condition: Any, seconds: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def noise_wheel(dest: Path, name: str, version: str, size: int, seed: int) -> Path:
    # base64 of random bytes: incompressible inside the wheel's zip
    noise = base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()
    module = name.replace("-", "_")
    return make_wheel(dest, name, version, files={f"{module}/blob.txt": noise})


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    name = f"graft_replicas_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    upstream_files = root / "pypi-upstream"
    upstream_files.mkdir()
    make_wheel(upstream_files, "httpish", "2.31.0")
    noise_wheel(upstream_files, "bigdep", "1.0", BIG, seed=1)
    noise_wheel(upstream_files, "shared-dep", "1.0", 2 << 20, seed=2)
    repo = make_upstream_repo(root / "debian", BOOKWORM, [DebSpec("curlish", "7.88.1-10+deb12u8")])
    maven_tree = _maven_tree(root / "maven") if MAVEN else None
    with ExitStack() as stack:
        moto = stack.enter_context(MotoServer(root / "moto"))
        pypi = stack.enter_context(SimpleIndex(upstream_files))
        apt_upstream = stack.enter_context(StaticServer(repo.root))
        bucket = moto.new_bucket()
        upstream = [
            {"ecosystem": "pypi", "name": "pypi", "url": pypi.index_url},
            {"ecosystem": "debian", "name": "debian", "url": apt_upstream.url,
             "keyring": str(repo.keyring)},
        ]  # fmt: skip
        if maven_tree is not None:
            from tests.fixtures.maven_build import M2_STORE
            from tests.fixtures.maven_repo import MavenRepo

            maven = stack.enter_context(MavenRepo(maven_tree, computed=(M2_STORE,)))
            upstream.append({"ecosystem": "maven", "name": "maven", "url": maven.url})
        settings: dict[str, object] = {
            **moto.settings(bucket),
            "database_url": pg_database,
            "keys_path": root / "keys",
            "migrate_on_start": "false",
            "s3_presign": "true",
            "s3_part_bytes": 5 << 20,
            "blob_redirect_min_bytes": 1024,
            "auth_cache_seconds": 60,  # a revocation must not wait for the cache to expire
            "auth_failure_limit": 1000,
            "usage_flush_seconds": 0.3,
            "upstream": json.dumps(upstream),
            "upstream_buffer_bytes": 1 << 20,
            "oci_gc_seconds": 0,
        }
        env = graft_env(root / "admin", **settings)
        run_cli(env, "key", "init")  # once, shared by both replicas (a Secret in Kubernetes)
        migrated = run_cli(env, "migrate").stdout
        assert "migrated from nothing" in migrated, migrated
        a = GraftServer(root / "a", **settings).start()
        b = GraftServer(root / "b", **settings)
        try:
            b.start()
            yield Cluster(a, b, moto, bucket, pypi, (repo, apt_upstream.url), a.token, settings)
        finally:
            a.stop()
            b.stop()


def pip_install(srv: GraftServer, token: str, target: Path, *packages: str) -> str:
    host = srv.url.removeprefix("http://")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--target",
         str(target), "--index-url", f"http://rootio:{token}@{host}/pypi/simple/", *packages],
        env=isolated_env(target.parent / f"home-{target.name}"), capture_output=True, text=True,
        timeout=240, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_replica_refuses_to_start_on_an_unmigrated_database(
    cluster: Cluster, tmp_path: Path
) -> None:
    name = f"graft_unmigrated_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        env = graft_env(tmp_path, **{**cluster.settings, "database_url": url})
        proc = subprocess.run(
            [str(BIN / "graft"), "serve"], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode != 0
        assert "run `graft migrate`" in proc.stderr + proc.stdout
        assert "migrated from nothing" in run_cli(env, "migrate").stdout
        assert "is current" in run_cli(env, "migrate").stdout  # a second run does nothing
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_publish_on_one_install_with_pip_through_the_other_by_presigned_redirect(
    cluster: Cluster, tmp_path: Path
) -> None:
    wheel = noise_wheel(tmp_path, "team-tool", "1.0", 2 << 20, seed=3)
    cluster.a.cli("publish", "pypi", str(wheel), "--url", cluster.a.url, "--token",
                  cluster.token, "--private")  # fmt: skip
    # Through B the download is a redirect to the object store, signed and short-lived.
    url = f"{cluster.b.url}/pypi/files/team-tool/{wheel.name}"
    auth = ("rootio", cluster.token)
    r = httpx.get(url, auth=auth)
    assert r.status_code == 302, r.text
    location = r.headers["location"]
    assert location.startswith(cluster.moto.url) and "X-Amz-Signature" in location
    assert cluster.token not in location and r.headers["cache-control"] == "no-store"
    # Ranges, HEAD and conditional requests.
    part = httpx.get(url, auth=auth, headers={"Range": "bytes=0-99"}, follow_redirects=True)
    assert part.status_code == 206 and part.content == wheel.read_bytes()[:100]
    head = httpx.head(url, auth=auth)
    assert head.status_code == 200 and int(head.headers["content-length"]) == wheel.stat().st_size
    assert (
        httpx.get(url, auth=auth, headers={"If-None-Match": head.headers["etag"]}).status_code
        == 304
    )
    target = tmp_path / "t"
    pip_install(cluster.b, cluster.token, target, "team-tool")
    assert (target / "team_tool" / "blob.txt").stat().st_size > 1 << 20


def test_pip_through_both_replicas_pulls_an_upstream_file_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A slow upstream file requested through both replicas at once is downloaded once: the
    second replica waits for the first one's cluster lock, then finds the blob stored."""
    name = "shared_dep-1.0-py3-none-any.whl"
    cluster.pypi.trickle[name] = 0.1  # about a second for 2 MiB
    before = sum(1 for _, path in cluster.pypi.requests if path.endswith(name))
    results: dict[str, str] = {}

    def install(srv: GraftServer, key: str) -> None:
        results[key] = pip_install(srv, cluster.token, tmp_path / key, "shared-dep")

    threads = [
        threading.Thread(target=install, args=(srv, key))
        for srv, key in ((cluster.a, "a"), (cluster.b, "b"))
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
    finally:
        cluster.pypi.trickle.pop(name)
    assert set(results) == {"a", "b"}
    fetched = sum(1 for _, path in cluster.pypi.requests if path.endswith(name)) - before
    assert fetched == 1
    for key in "ab":
        assert (tmp_path / key / "shared_dep" / "blob.txt").is_file()


def test_a_revoked_token_is_refused_by_the_other_replica_at_once(cluster: Cluster) -> None:
    auth = ("rootio", cluster.token)
    made = httpx.post(
        f"{cluster.a.url}/api/orgs/demo/tokens",
        json={"account": "admin", "scopes": ["read"]},
        auth=auth,
    )
    assert made.status_code == 201, made.text
    token, token_id = made.json()["token"], made.json()["info"]["id"]
    whoami = f"{cluster.b.url}/api/whoami"
    assert httpx.get(whoami, auth=("x", token)).status_code == 200  # now cached by B for 60 s
    revoked = httpx.post(f"{cluster.a.url}/api/orgs/demo/tokens/{token_id}/revoke", auth=auth)
    assert revoked.status_code == 200
    # B had the token cached for 60 s; the announcement makes it drop it within moments.
    assert wait_until(lambda: httpx.get(whoami, auth=("x", token)).status_code == 401, 5)
    assert httpx.get(f"{cluster.a.url}/api/whoami", auth=("x", token)).status_code == 401
    # The same through the CLI, another process: both replicas refuse the token.
    made = httpx.post(
        f"{cluster.a.url}/api/orgs/demo/tokens",
        json={"account": "admin", "scopes": ["read"]},
        auth=auth,
    ).json()
    for srv in (cluster.a, cluster.b):
        assert httpx.get(f"{srv.url}/api/whoami", auth=("x", made["token"])).status_code == 200
    cluster.a.cli("token", "revoke", str(made["info"]["id"]))
    for srv in (cluster.a, cluster.b):
        url = f"{srv.url}/api/whoami"
        assert wait_until(
            lambda u=url: httpx.get(u, auth=("x", made["token"])).status_code == 401, 5
        )


def test_apt_installs_through_the_other_replica(cluster: Cluster, tmp_path: Path) -> None:
    repo, upstream_url = cluster.debian
    content = b"#!/bin/sh\n# " + random.Random(9).randbytes(16 << 10).hex().encode()  # > 1 KiB
    deb = build_deb(tmp_path, DebSpec("curlish", "7.88.1-10+deb12u8.graft.1", content=content))
    with deb.open("rb") as fh:
        r = httpx.post(
            f"{cluster.a.url}/debian/{BOOKWORM}/upload",
            files={"file": (deb.name, fh)},
            data={"fixes": "CVE-2024-0001"},
            auth=("rootio", cluster.token),
            timeout=60,
        )
    assert r.status_code == 200, r.text
    # Both replicas serve the same Release (the signatures differ, the indexes never do).
    release = f"/debian/{BOOKWORM}/dists/{BOOKWORM}/Release"
    auth = ("", cluster.token)
    assert wait_until(
        lambda: (
            httpx.get(cluster.a.url + release, auth=auth).content
            == httpx.get(cluster.b.url + release, auth=auth).content
        )
    )
    apt = Apt(tmp_path / "apt", cluster.b, upstream_url, repo.keyring, cluster.token)
    apt.run("apt-get", "update")
    policy = apt.run("apt-cache", "policy", "rootio-curlish").stdout
    assert "Candidate: 7.88.1-10+deb12u8.graft.1" in policy
    apt.run("apt-get", "install", "--download-only", "-y", "rootio-curlish")
    archives = list((tmp_path / "apt" / "cache" / "archives").glob("rootio-curlish_*.deb"))
    assert len(archives) == 1
    # apt fetched the .deb by following the presigned redirect to the object store.
    pool = httpx.get(
        f"{cluster.b.url}/debian/{BOOKWORM}/pool/main/r/rootio-curlish/{archives[0].name}",
        auth=auth,
    )
    assert pool.status_code == 302 and pool.headers["location"].startswith(cluster.moto.url)


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_skopeo_pushes_to_one_and_pulls_from_the_other(cluster: Cluster, tmp_path: Path) -> None:
    from tests.integration.test_oci_skopeo import skopeo

    home = tmp_path / "home"
    img = make_image("replicas", layer_sizes=(4096, 300_000))
    layout = write_layout(tmp_path / "layout", "v1", [img])
    creds = f"rootio:{cluster.token}"
    host_a = cluster.a.url.removeprefix("http://")
    host_b = cluster.b.url.removeprefix("http://")
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds,
           f"oci:{layout}:v1", f"docker://{host_a}/team/app:1.0", home=home)  # fmt: skip
    back = tmp_path / "back"
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds", creds,
           f"docker://{host_b}/team/app:1.0", f"oci:{back}:copied", home=home)  # fmt: skip
    for digest, data in img.blobs.items():
        assert (back / "blobs" / "sha256" / digest.split(":")[1]).read_bytes() == data
    # The layers came by redirect to the object store.
    layer = max(img.blobs, key=lambda d: len(img.blobs[d]))
    r = httpx.get(f"{cluster.b.url}/v2/team/app/blobs/{layer}", auth=("rootio", cluster.token))
    assert r.status_code in (302, 307) and r.headers["location"].startswith(cluster.moto.url)


def test_npm_installs_through_the_other_replica_by_presigned_redirect(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.fixtures.npm_clients import client, js_env, run
    from tests.fixtures.npm_packages import make_package

    noise = random.Random(8).randbytes(48 << 10).hex()  # a tarball above the redirect size
    tgz = make_package(tmp_path / "pkg", "@corp/replicated", "1.0.0", files={"big.txt": noise})
    cluster.a.cli("publish", "npm", str(tgz), "--url", cluster.a.url, "--token",
                  cluster.token, "--private")  # fmt: skip
    tarball = f"{cluster.b.url}/npm/@corp/replicated/-/replicated-1.0.0.tgz"
    hop = httpx.get(tarball, auth=("", cluster.token))
    assert hop.status_code == 302 and hop.headers["location"].startswith(cluster.moto.url)
    proj = tmp_path / "app"
    proj.mkdir()
    manifest = {"name": "app", "version": "1.0.0", "private": True,
                "dependencies": {"@corp/replicated": "1.0.0"}}  # fmt: skip
    (proj / "package.json").write_text(json.dumps(manifest))
    npmrc = cluster.b.cli("configure", "npm", "--url", cluster.b.url, "--token", cluster.token)
    (proj / ".npmrc").write_text(npmrc.stdout)
    env = js_env(tmp_path / "home")
    run([*client("npm"), "install", "--no-audit"], env, proj)
    installed = proj / "node_modules" / "@corp" / "replicated" / "big.txt"
    assert installed.read_text() == noise


@pytest.mark.skipif(not MAVEN, reason="mvn or javac is not installed")
def test_maven_builds_through_a_replica_by_presigned_redirect(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.fixtures.maven_build import Maven, require_maven, settings_xml, write_project

    require_maven()
    printed = cluster.b.cli("configure", "maven", "--url", cluster.b.url).stdout
    mvn = Maven(tmp_path / "mvn", settings_xml(printed))
    app = write_project(
        tmp_path / "app", "com.example.app", "app", "1.0",
        sources={"app/App.java": "package app; class App { int n = demo.Hello.n(); }"},
        dependencies=(("com.example", "demo-lib", "1.0"),),
    )  # fmt: skip
    # Every plugin and the dependency are pulled through B into the object store, and Maven
    # gets each of them (above 1 KiB) by following the redirect to a presigned URL.
    assert "BUILD SUCCESS" in mvn.run(app, "compile", token=cluster.token).stdout
    path = "com/example/demo-lib/1.0/demo-lib-1.0.jar"
    assert (mvn.local_repo / path).is_file()
    jar = httpx.get(f"{cluster.a.url}/maven/{path}", auth=("x", cluster.token))
    assert jar.status_code == 302 and jar.headers["location"].startswith(cluster.moto.url)
    plugin = httpx.get(
        f"{cluster.b.url}/maven/org/apache/maven/plugins/maven-compiler-plugin/3.13.0/"
        "maven-compiler-plugin-3.13.0.jar",
        auth=("x", cluster.token),
    )
    assert plugin.status_code == 302 and plugin.headers["location"].startswith(cluster.moto.url)


def test_apk_style_client_follows_the_redirect(cluster: Cluster, tmp_path: Path) -> None:
    """apk is not installable on this machine; curl does what apk 2.14 does with a download
    (follow 301/302/303 to another host, credentials not forwarded there)."""
    wheel = noise_wheel(tmp_path, "apk-like", "1.0", 64 << 10, seed=4)
    cluster.a.cli("publish", "pypi", str(wheel), "--url", cluster.a.url, "--token",
                  cluster.token, "--private")  # fmt: skip
    out = tmp_path / "got"
    host = cluster.b.url.removeprefix("http://")
    proc = subprocess.run(
        ["curl", "-sS", "-f", "-L", "--proto-redir", "http,https", "--max-redirs", "5",
         "-A", "apk-tools/2.14.4", "-o", str(out), "-w", "%{num_redirects} %{url_effective}",
         f"http://rootio:{cluster.token}@{host}/pypi/files/apk-like/{wheel.name}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    redirects, effective = proc.stdout.split(" ", 1)
    assert redirects == "1" and effective.startswith(cluster.moto.url)
    assert sha256_file(out) == sha256_file(wheel)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _kill(srv: GraftServer) -> None:
    """SIGKILL the replica and its worker processes (a container killed), no shutdown."""
    assert srv.proc is not None
    pids = [srv.proc.pid]
    pids += [c for p in list(pids) for c in _children(p)]
    pids += [c for p in pids[1:] for c in _children(p)]
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    srv.proc.wait(10)
    srv.proc = None


def test_a_replica_killed_mid_upload_leaves_nothing_and_the_retry_succeeds(
    cluster: Cluster, tmp_path: Path
) -> None:
    wheel = noise_wheel(tmp_path, "killed-upload", "1.0", 6 << 20, seed=5)
    body_head = (
        b"--XX\r\nContent-Disposition: form-data; name=\":action\"\r\n\r\nfile_upload\r\n"
        b"--XX\r\nContent-Disposition: form-data; name=\"graft_private\"\r\n\r\n1\r\n"
        b"--XX\r\nContent-Disposition: form-data; name=\"content\"; filename=\"" +
        wheel.name.encode() + b"\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )  # fmt: skip
    data = wheel.read_bytes()
    body_tail = b"\r\n--XX--\r\n"
    length = len(body_head) + len(data) + len(body_tail)
    auth = base64.b64encode(f"rootio:{cluster.token}".encode()).decode()
    a_url = cluster.a.url
    with socket.create_connection(("127.0.0.1", cluster.a.port)) as sock:
        sock.sendall(
            f"POST /pypi/legacy/ HTTP/1.1\r\nHost: 127.0.0.1:{cluster.a.port}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Length: {length}\r\n"
            "Content-Type: multipart/form-data; boundary=XX\r\n\r\n".encode()
            + body_head
            + data[: len(data) // 2]
        )
        time.sleep(0.5)  # the replica is reading the body
        _kill(cluster.a)
    page = httpx.get(f"{cluster.b.url}/pypi/simple/killed-upload/", auth=("", cluster.token))
    assert page.status_code == 404  # nothing published
    digest = hashlib.sha256(data).hexdigest()
    assert not [k for k in cluster.objects() if digest in k]
    # The client retries against the other replica: it succeeds and is visible everywhere.
    twine = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
             "--repository-url", f"{cluster.b.url}/pypi/legacy/", "-u", "__token__",
             "-p", cluster.token, str(wheel)]  # fmt: skip
    done = subprocess.run(twine, env=isolated_env(tmp_path / "home"), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    cluster.a.start()  # the killed replica comes back (a new pod)
    assert a_url == cluster.a.url
    pip_install(cluster.a, cluster.token, tmp_path / "t", "killed-upload")


def test_a_replica_killed_mid_pull_through_leaves_nothing_partial(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The upstream file streams into a multipart upload; the replica dies half way: nothing
    appears at the content address, the abandoned upload is cleaned up, and the client's
    retry through the other replica gets the verified file."""
    name = "bigdep-1.0-py3-none-any.whl"
    cluster.pypi.trickle[name] = 0.05
    url = f"{cluster.a.url}/pypi/files/bigdep/{name}"
    seen = set(cluster.uploads())
    try:
        with httpx.stream("GET", url, auth=("", cluster.token), timeout=60) as r:
            assert r.status_code == 200
            # read until a part has reached the object store
            got = 0
            for chunk in r.iter_bytes():
                got += len(chunk)
                if set(cluster.uploads()) - seen:
                    break
            assert set(cluster.uploads()) - seen, "no multipart upload started"
            _kill(cluster.a)
    except httpx.HTTPError:
        pass
    finally:
        cluster.pypi.trickle.pop(name)
    upstream_digest = sha256_file(cluster.pypi.root / name)
    assert not [k for k in cluster.objects() if upstream_digest in k]
    leftover = set(cluster.uploads()) - seen
    assert leftover  # the dead replica's unfinished upload
    # The client retries through the other replica.
    target = tmp_path / "t"
    pip_install(cluster.b, cluster.token, target, "bigdep")
    assert [k for k in cluster.objects() if upstream_digest in k]

    async def cleanup() -> int:
        store = cluster.store()
        try:
            return await store.cleanup_stale_uploads(0)
        finally:
            await store.close()

    # housekeeping (hourly, for uploads idle a day) removes it; here at once
    assert asyncio.run(cleanup()) >= len(leftover)
    assert not set(cluster.uploads()) & leftover
    cluster.a.start()


def test_a_replica_stopped_with_sigterm_writes_its_last_usage_batch(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Kubernetes stops a pod with SIGTERM: the usage events it still holds (here it would
    write them only after an hour) are written before it exits, each counted once."""
    from sqlalchemy import func, select

    from graft.db import Database
    from graft.db.models import LibraryEntry

    wheel = noise_wheel(tmp_path, "usage-counted", "1.0", 4 << 10, seed=6)
    cluster.a.cli("publish", "pypi", str(wheel), "--url", cluster.a.url, "--token",
                  cluster.token, "--private")  # fmt: skip
    c = GraftServer(tmp_path / "c", **{**cluster.settings, "usage_flush_seconds": 3600}).start()
    url = f"{c.url}/pypi/files/usage-counted/{wheel.name}"
    for _ in range(7):  # (a redirect to the store counts as a download too)
        assert httpx.get(url, auth=("", cluster.token)).status_code == 302
    assert c.proc is not None
    c.proc.send_signal(signal.SIGTERM)
    assert c.proc.wait(30) == 0, c.log()
    c.proc = None

    async def count() -> int | None:
        db = Database(str(cluster.settings["database_url"]))
        try:
            async with db.session() as s:
                return await s.scalar(
                    select(func.sum(LibraryEntry.count)).where(
                        LibraryEntry.package == "usage-counted"
                    )
                )
        finally:
            await db.dispose()

    assert asyncio.run(count()) == 7


# --- OCI chunked uploads: the session lives in PostgreSQL, its chunks in the bucket ---------


def registry_client(cluster: Cluster, name: str) -> dict[str, str]:
    """A registry token issued by A, which B accepts as well (the keys are shared)."""
    r = httpx.get(
        f"{cluster.a.url}/v2/token",
        params={"service": "graft", "scope": f"repository:{name}:pull,push"},
        auth=("rootio", cluster.token),
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def patch(srv: GraftServer, location: str, headers: dict[str, str], data: bytes, start: int,
          content: Any = None) -> httpx.Response:  # fmt: skip
    return httpx.patch(
        srv.url + location,
        content=data if content is None else content,
        headers={**headers, "Content-Range": f"{start}-{start + len(data) - 1}",
                 "Content-Type": "application/octet-stream"},
        timeout=60,
    )  # fmt: skip


def scratch_keys(cluster: Cluster, upload_id: str) -> list[str]:
    return [k for k in cluster.objects() if f"oci-uploads/{upload_id}/" in k]


def test_a_chunked_push_spread_over_both_replicas(cluster: Cluster) -> None:
    name = "team/chunked"
    auth = registry_client(cluster, name)
    data = random.Random(11).randbytes(7 << 20)  # the first chunk is above a multipart part
    cuts = [0, 5_500_000, 6_000_000, 6_500_000, len(data) - 1000]
    started = httpx.post(f"{cluster.a.url}/v2/{name}/blobs/uploads/", headers=auth)
    assert started.status_code == 202, started.text
    location, upload_id = started.headers["location"], started.headers["docker-upload-uuid"]
    for i, (start, stop) in enumerate(itertools.pairwise(cuts)):
        srv = (cluster.a, cluster.b)[i % 2]
        r = patch(srv, location, auth, data[start:stop], start)
        assert r.status_code == 202, r.text
        assert r.headers["range"] == f"0-{stop - 1}"
        location = r.headers["location"]
        # the other replica reports the same offset
        other = (cluster.b, cluster.a)[i % 2]
        status = httpx.get(other.url + location, headers=auth)
        assert status.status_code == 204 and status.headers["range"] == f"0-{stop - 1}"
    assert len(scratch_keys(cluster, upload_id)) == len(cuts) - 1
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    # nothing at the content address before the PUT
    assert not [k for k in cluster.objects() if digest.split(":")[1] in k]
    done = httpx.put(f"{cluster.b.url}{location}", params={"digest": digest},
                     content=data[cuts[-1]:], headers=auth, timeout=60)  # fmt: skip
    assert done.status_code == 201, done.text
    assert scratch_keys(cluster, upload_id) == []
    assert httpx.get(cluster.a.url + location, headers=auth).status_code == 404
    pulled = httpx.get(f"{cluster.a.url}/v2/{name}/blobs/{digest}", headers=auth,
                       follow_redirects=True, timeout=60)  # fmt: skip
    assert pulled.status_code == 200 and pulled.content == data
    assert str(pulled.url).startswith(cluster.moto.url)  # by presigned redirect


def test_two_chunks_for_the_same_offset_on_two_replicas_one_wins(cluster: Cluster) -> None:
    name = "team/conflict"
    auth = registry_client(cluster, name)
    first = b"a" * 3000
    location = httpx.post(f"{cluster.b.url}/v2/{name}/blobs/uploads/", headers=auth).headers[
        "location"
    ]
    upload_id = location.rsplit("/", 1)[1]
    assert patch(cluster.a, location, auth, first, 0).status_code == 202
    chunks = {"a": b"A" * 5000, "b": b"B" * 5000}
    results: dict[str, httpx.Response] = {}
    both_started = threading.Barrier(2)

    def slow(data: bytes) -> Iterator[bytes]:
        yield data[:100]
        both_started.wait(10)  # both replicas have checked the offset and are writing
        time.sleep(0.3)
        yield data[100:]

    def send(key: str, srv: GraftServer) -> None:
        data = chunks[key]
        results[key] = patch(srv, location, auth, data, len(first), content=slow(data))

    threads = [
        threading.Thread(target=send, args=(key, srv))
        for key, srv in (("a", cluster.a), ("b", cluster.b))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [202, 416], {k: r.text for k, r in results.items()}
    winner = next(k for k, r in results.items() if r.status_code == 202)
    loser = results["b" if winner == "a" else "a"]
    error = loser.json()["errors"][0]
    assert error["code"] == "BLOB_UPLOAD_INVALID"
    # refused by the compare-and-set after it was written, not by the check before
    assert error["message"].startswith("another chunk took offset 3000 first"), error
    assert loser.headers["range"] == f"0-{len(first) + 5000 - 1}"
    assert len(scratch_keys(cluster, upload_id)) == 2  # the loser's chunk was deleted
    data = first + chunks[winner]
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = httpx.put(cluster.a.url + location, params={"digest": digest}, headers=auth)
    assert done.status_code == 201, done.text
    blob = httpx.get(f"{cluster.b.url}/v2/{name}/blobs/{digest}", headers=auth,
                     follow_redirects=True)  # fmt: skip
    assert blob.content == data


def test_a_replica_killed_mid_chunk_leaves_the_session_at_its_last_offset(
    cluster: Cluster,
) -> None:
    name = "team/killed-chunk"
    auth = registry_client(cluster, name)
    data = random.Random(12).randbytes(3 << 20)
    half = len(data) // 2
    location = httpx.post(f"{cluster.b.url}/v2/{name}/blobs/uploads/", headers=auth).headers[
        "location"
    ]
    assert patch(cluster.b, location, auth, data[:1000], 0).status_code == 202
    # The next chunk goes to A, which dies with half of it received.
    a_url = cluster.a.url
    rest = data[1000:]
    with socket.create_connection(("127.0.0.1", cluster.a.port)) as sock:
        sock.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1:{cluster.a.port}\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Length: {len(rest)}\r\n"
            f"Content-Range: 1000-{len(data) - 1}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + rest[:half]
        )
        time.sleep(0.5)  # the replica is reading the chunk
        _kill(cluster.a)
    status = httpx.get(cluster.b.url + location, headers=auth)
    assert status.status_code == 204 and status.headers["range"] == "0-999"
    # The client sends the chunk again, through the other replica, and finishes.
    r = patch(cluster.b, location, auth, rest, 1000)
    assert r.status_code == 202 and r.headers["range"] == f"0-{len(data) - 1}", r.text
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = httpx.put(cluster.b.url + r.headers["location"], params={"digest": digest},
                     headers=auth)  # fmt: skip
    assert done.status_code == 201, done.text
    cluster.a.start()  # the killed replica comes back
    assert a_url == cluster.a.url
    pulled = httpx.get(f"{cluster.a.url}/v2/{name}/blobs/{digest}", headers=auth,
                       follow_redirects=True, timeout=60)  # fmt: skip
    assert pulled.status_code == 200 and pulled.content == data


def test_an_upstream_added_by_the_cli_is_used_by_running_replicas(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Replicas reload their upstream list every 30 s; `graft upstream add` announces the
    change, so a running replica uses the new upstream within moments, no restart."""
    files = tmp_path / "late"
    files.mkdir()
    make_wheel(files, "late-dep", "1.0")
    auth = ("", cluster.token)
    with SimpleIndex(files) as late:
        for srv in (cluster.a, cluster.b):  # both have a freshly loaded list
            assert httpx.get(f"{srv.url}/pypi/simple/httpish/", auth=auth).status_code == 200
        cluster.a.cli("upstream", "add", "late", "--ecosystem", "pypi", "--url", late.index_url,
                      "--priority", "200")  # fmt: skip
        try:
            for srv in (cluster.b, cluster.a):
                url = f"{srv.url}/pypi/simple/late-dep/"
                assert wait_until(lambda u=url: httpx.get(u, auth=auth).status_code == 200, 10)
            pip_install(cluster.b, cluster.token, tmp_path / "t", "late-dep")
        finally:
            cluster.a.cli("upstream", "remove", "late")
