"""The Maven repository protocol against a running `graft serve`, over plain HTTP: verified
pull-through from two local upstreams, checksums, signatures, merged metadata, deploys and
every kind of bad input."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import socket
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.maven_repo import MavenRepo, pom_xml, write_artifact
from tests.integration.graftserver import GraftServer

SNAPSHOT_METADATA = """<metadata><groupId>org.other</groupId><artifactId>snap</artifactId>
<version>1.0-SNAPSHOT</version><versioning><snapshot><timestamp>20240101.120000</timestamp>
<buildNumber>3</buildNumber></snapshot><lastUpdated>20240101120000</lastUpdated>
<snapshotVersions><snapshotVersion><extension>jar</extension><value>1.0-20240101.120000-3</value>
<updated>20240101120000</updated></snapshotVersion></snapshotVersions></versioning></metadata>
"""
SIG = b"-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n"


def make_jar(marker: str, size: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        z.writestr("marker.txt", marker)
        if size:
            noise = base64.b64encode(random.Random(marker).randbytes(size)).decode()
            z.writestr("noise.txt", noise, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MavenRepo]:
    root = tmp_path_factory.mktemp("first")
    for v in ("1.0", "1.1", "2.0"):
        write_artifact(root, "org.sample", "lib", v, jar=make_jar(f"lib {v}"))
    write_artifact(
        root, "org.sample", "lib", "2.1", jar=make_jar("lib 2.1"), extra={".jar.asc": SIG}
    )
    write_artifact(root, "org.sample", "big", "1.0", jar=make_jar("big", 3 << 20))
    for name in ("corrupt", "corrupt-big", "wrongsum", "nosum", "claimed", "shared"):
        size = 3 << 20 if name == "corrupt-big" else 0
        write_artifact(root, "org.sample", name, "1.0", jar=make_jar(name, size))
    with MavenRepo(root) as repo:
        repo.corrupt |= {
            "org/sample/corrupt/1.0/corrupt-1.0.jar",
            "org/sample/corrupt-big/1.0/corrupt-big-1.0.jar",
        }
        repo.wrong_checksum.add("org/sample/wrongsum/1.0/wrongsum-1.0.jar")
        for sfx in (".jar.sha1", ".jar.md5"):
            (root / f"org/sample/nosum/1.0/nosum-1.0{sfx}").unlink()
        yield repo


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MavenRepo]:
    root = tmp_path_factory.mktemp("second")
    write_artifact(root, "org.sample", "lib", "3.0", jar=make_jar("lib 3.0 (second)"))
    write_artifact(root, "org.sample", "lib", "1.0", jar=make_jar("lib 1.0 from second"))
    write_artifact(root, "org.other", "only-second", "1.0", jar=make_jar("only second"))
    snap = root / "org/other/snap/1.0-SNAPSHOT"
    snap.mkdir(parents=True)
    (snap / "maven-metadata.xml").write_text(SNAPSHOT_METADATA)
    jar = make_jar("snapshot 3")
    (snap / "snap-1.0-20240101.120000-3.jar").write_bytes(jar)
    (snap / "snap-1.0-20240101.120000-3.jar.sha1").write_text(hashlib.sha1(jar).hexdigest())
    with MavenRepo(root) as repo:
        yield repo


@pytest.fixture(scope="module")
def graft(
    tmp_path_factory: pytest.TempPathFactory, first: MavenRepo, second: MavenRepo
) -> Iterator[GraftServer]:
    upstreams = [  # the second is revalidated every second: the stale-copy test needs that
        {
            "ecosystem": "maven",
            "name": "second",
            "url": second.url,
            "priority": 200,
            "ttl_seconds": 1,
        },
        {"ecosystem": "maven", "name": "first", "url": first.url, "priority": 10},
    ]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-maven-protocol") / "data",
        upstream=json.dumps(upstreams),
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
        upstream_buffer_bytes=1 << 20,  # the 3 MiB jars take the streaming path
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(graft: GraftServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{graft.url}/maven/", auth=("mvn", graft.token)) as c:
        yield c


@pytest.fixture(scope="module")
def reader(graft: GraftServer) -> str:
    r = httpx.post(
        f"{graft.url}/api/orgs/demo/tokens",
        json={"account": "admin", "scopes": ["read"]},
        auth=("x", graft.token),
    )
    return str(r.json()["token"])


def flip(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


def blob_exists(graft: GraftServer, data: bytes) -> bool:
    hex_ = hashlib.sha256(data).hexdigest()
    return (graft.data_dir / "blobs" / "sha256" / hex_[:2] / hex_).is_file()


def catalog(graft: GraftServer) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(graft.data_dir / "graft.db") as db:
        return db.execute(
            "SELECT filename, kind, version, fixes FROM catalog_artifacts ORDER BY id"
        ).fetchall()


def raw_get(graft: GraftServer, target: str) -> int:
    """Send a request line exactly as written (no client-side path normalization)."""
    auth = base64.b64encode(f"x:{graft.token}".encode()).decode()
    with socket.create_connection(("127.0.0.1", graft.port), timeout=10) as s:
        s.sendall(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        head = s.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1])


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD"])
def test_every_401_carries_a_basic_challenge(graft: GraftServer, method: str) -> None:
    url = f"{graft.url}/maven/org/sample/lib/1.0/lib-1.0.jar"
    for auth in (None, ("x", "graft_" + "B" * 49)):
        r = httpx.request(method, url, auth=auth, content=b"x" if method == "PUT" else None)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Basic realm="graft"')


def test_a_read_token_cannot_deploy(graft: GraftServer, reader: str) -> None:
    r = httpx.put(
        f"{graft.url}/maven/org/acme/x/1.0/x-1.0.pom",
        content=pom_xml("org.acme", "x", "1.0"),
        auth=("x", reader),
    )
    assert r.status_code == 403 and "publish" in r.text


# -- verified pull-through --------------------------------------------------------------------


def test_upstream_artifact_with_every_checksum(
    client: httpx.Client, first: MavenRepo, graft: GraftServer
) -> None:
    path = "org/sample/lib/1.1/lib-1.1.jar"
    expected = (first.roots[0] / path).read_bytes()
    r = client.get(path)
    assert r.status_code == 200 and r.content == expected
    assert r.headers["content-type"] == "application/java-archive"
    assert r.headers["etag"] == f'"{hashlib.sha256(expected).hexdigest()}"'
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        c = client.get(f"{path}.{algorithm}")
        assert c.status_code == 200 and c.text == hashlib.new(algorithm, expected).hexdigest()
    before = len(first.requests)
    again = client.get(path, headers={"Range": "bytes=0-3"})
    assert again.status_code == 206 and again.content == expected[:4]
    assert client.get(path, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert client.head(path).headers["content-length"] == str(len(expected))
    assert len(first.requests) == before  # served from Graft's store


def test_priority_decides_which_upstream_serves_a_file(
    client: httpx.Client, first: MavenRepo, second: MavenRepo
) -> None:
    r = client.get("org/sample/lib/1.0/lib-1.0.jar")  # both have it: first (priority 10) wins
    assert r.content == (first.roots[0] / "org/sample/lib/1.0/lib-1.0.jar").read_bytes()
    path = "org/other/only-second/1.0/only-second-1.0.jar"
    r = client.get(path)
    assert r.status_code == 200 and r.content == (second.roots[0] / path).read_bytes()


def test_a_large_upstream_file_streams_and_is_then_held(
    client: httpx.Client, first: MavenRepo, graft: GraftServer
) -> None:
    path = "org/sample/big/1.0/big-1.0.jar"
    expected = (first.roots[0] / path).read_bytes()
    assert len(expected) > 3 << 20
    assert client.get(path).content == expected
    assert blob_exists(graft, expected)
    assert client.get(f"{path}.sha1").text == hashlib.sha1(expected).hexdigest()
    assert first.count("big-1.0.jar") == 1


@pytest.mark.parametrize("name", ["corrupt", "wrongsum"])
def test_an_upstream_file_that_fails_its_checksum_is_a_502_and_never_cached(
    client: httpx.Client, first: MavenRepo, graft: GraftServer, name: str
) -> None:
    path = f"org/sample/{name}/1.0/{name}-1.0.jar"
    r = client.get(path)
    assert r.status_code == 502
    assert "sha1" in r.text and "nothing was cached" in r.text
    true_bytes = (first.roots[0] / path).read_bytes()
    assert not blob_exists(graft, flip(true_bytes))
    assert client.get(f"{path}.sha1").status_code == 502  # still refused, not computed
    if name == "wrongsum":
        assert not blob_exists(graft, true_bytes)


def test_a_large_corrupt_file_is_cut_short_and_never_cached(
    client: httpx.Client, first: MavenRepo, graft: GraftServer
) -> None:
    path = "org/sample/corrupt-big/1.0/corrupt-big-1.0.jar"
    with client.stream("GET", path) as r:
        assert r.status_code == 200  # streaming began before the end could be checked
        with pytest.raises(httpx.HTTPError):  # never a complete wrong file
            b"".join(r.iter_bytes())
    assert client.get(path).status_code == 502
    assert not blob_exists(graft, flip((first.roots[0] / path).read_bytes()))


def test_a_file_without_checksums_is_not_served(client: httpx.Client) -> None:
    r = client.get("org/sample/nosum/1.0/nosum-1.0.jar")
    assert r.status_code == 404


def test_misses_are_negative_cached(client: httpx.Client, first: MavenRepo) -> None:
    path = "org/sample/lib/1.0/lib-1.0-sources.jar"
    for _ in range(5):
        assert client.get(path).status_code == 404
    assert first.count("lib-1.0-sources.jar.sha1") == 1


def test_signatures_pass_through(client: httpx.Client, first: MavenRepo) -> None:
    r = client.get("org/sample/lib/2.1/lib-2.1.jar.asc")
    assert r.status_code == 200 and r.content == SIG
    assert r.headers["content-type"].startswith("application/pgp-signature")
    assert (
        client.get("org/sample/lib/2.1/lib-2.1.jar.asc.sha1").text == hashlib.sha1(SIG).hexdigest()
    )
    assert client.get("org/sample/lib/1.0/lib-1.0.jar.asc").status_code == 404


def test_metadata_merges_every_upstream(client: httpx.Client) -> None:
    r = client.get("org/sample/lib/maven-metadata.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "<latest>3.0</latest>" in r.text and "<release>3.0</release>" in r.text
    versions = [line.strip()[9:-10] for line in r.text.splitlines() if "<version>" in line]
    assert versions == ["1.0", "1.1", "2.0", "2.1", "3.0"]
    assert "<lastUpdated>20240102030405</lastUpdated>" in r.text
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        c = client.get(f"org/sample/lib/maven-metadata.xml.{algorithm}")
        assert c.text == hashlib.new(algorithm, r.content).hexdigest()
    assert client.get("org/sample/nothing/maven-metadata.xml").status_code == 404


def test_a_down_upstream_leaves_its_last_metadata_in_the_merge(
    client: httpx.Client, second: MavenRepo
) -> None:
    assert "<version>3.0</version>" in client.get("org/sample/lib/maven-metadata.xml").text
    time.sleep(1.2)
    second.down = True
    try:
        r = client.get("org/sample/lib/maven-metadata.xml")
    finally:
        second.down = False
    assert r.status_code == 200 and "<version>3.0</version>" in r.text
    assert "upstream unreachable" in r.headers["warning"]


def test_snapshot_builds_pass_through(client: httpx.Client, second: MavenRepo) -> None:
    meta = client.get("org/other/snap/1.0-SNAPSHOT/maven-metadata.xml")
    assert meta.status_code == 200
    assert "<value>1.0-20240101.120000-3</value>" in meta.text
    assert "<buildNumber>3</buildNumber>" in meta.text
    path = "org/other/snap/1.0-SNAPSHOT/snap-1.0-20240101.120000-3.jar"
    for _ in range(2):  # pulled through, then held
        r = client.get(path)
        assert r.status_code == 200 and r.content == (second.roots[0] / path).read_bytes()
        assert "immutable" not in r.headers["cache-control"]  # a SNAPSHOT may change
    assert "immutable" in client.get("org/sample/lib/1.0/lib-1.0.jar").headers["cache-control"]


# -- bad paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/maven/org/sample/%2e%2e/%2e%2e/etc/passwd",
        "/maven/org/sample/lib/1.0/..%2f..%2flib-1.0.jar",
        "/maven/org/sample/lib/1.0/%252e%252e/lib-1.0.jar",
        "/maven//etc/passwd",
        "/maven/org/sample/lib/1.0/lib-1.0.jar%00.pom",
        "/maven/org/sample/lib/1.0/lib%5c..%5clib-1.0.jar",
        "/maven/org/sample/lib/.hidden/lib-.hidden.jar",
        "/maven/org/sample/lib/1.0/lib-1.0.jar/",
    ],
)
def test_path_tricks_are_refused(graft: GraftServer, target: str) -> None:
    assert raw_get(graft, target) == 400


def test_a_name_outside_the_layout_is_not_found(client: httpx.Client) -> None:
    assert client.get("org/sample/lib/1.0/other-1.0.jar").status_code == 404
    assert client.get("archetype-catalog.xml").status_code == 404


# -- deploys ----------------------------------------------------------------------------------


def put(client: httpx.Client, path: str, data: bytes, **headers: str) -> httpx.Response:
    return client.put(path, content=data, headers=headers)


def test_deploy_a_patched_build_file_by_file(client: httpx.Client, graft: GraftServer) -> None:
    base = "org/sample/lib/2.0-graft.1/lib-2.0-graft.1"
    jar = make_jar("patched 2.0")
    r = put(client, f"{base}.jar", jar, **{"X-Graft-Fixes": "CVE-2024-1111"})
    assert r.status_code == 201 and "patched build of org.sample:lib 2.0-graft.1" in r.text
    assert (
        put(client, f"{base}.jar.sha1", hashlib.sha1(jar).hexdigest().encode()).status_code == 201
    )
    pom = pom_xml("org.sample", "lib", "2.0-graft.1", properties={"graft.fixes": "CVE-2024-2222"})
    assert put(client, f"{base}.pom", pom).status_code == 201
    assert put(client, f"{base}.jar.asc", SIG).status_code == 201
    meta = (
        b"<metadata><versioning><versions><version>x</version></versions></versioning></metadata>"
    )
    for suffix in ("", ".sha1", ".md5"):
        r = put(client, f"org/sample/lib/maven-metadata.xml{suffix}", meta)
        assert r.status_code == 201
    rows = [r for r in catalog(graft) if "2.0-graft.1" in r[0]]
    assert {Path(f).name for f, *_ in rows} == {
        "lib-2.0-graft.1.jar",
        "lib-2.0-graft.1.pom",
        "lib-2.0-graft.1.jar.asc",
    }
    assert all(set(json.loads(fx)) == {"CVE-2024-1111", "CVE-2024-2222"} for *_, fx in rows)
    assert client.get(f"{base}.jar").content == jar
    assert client.get(f"{base}.jar.asc").content == SIG
    assert client.get(f"{base}.jar.sha512").text == hashlib.sha512(jar).hexdigest()
    assert client.get(f"{base}.pom.md5").text == hashlib.md5(pom).hexdigest()
    meta_r = client.get("org/sample/lib/maven-metadata.xml")
    assert "<version>2.0-graft.1</version>" in meta_r.text  # Graft's rendering, not the PUT
    assert "<version>x</version>" not in meta_r.text
    assert "<latest>3.0</latest>" in meta_r.text


def test_redeploy_is_a_conflict_and_changes_nothing(
    client: httpx.Client, graft: GraftServer
) -> None:
    base = "org/sample/lib/2.0-graft.1/lib-2.0-graft.1"
    before = catalog(graft)
    r = put(client, f"{base}.jar", make_jar("other bytes"))
    assert r.status_code == 409 and "2.0-graft.2" in r.text
    assert catalog(graft) == before
    assert not blob_exists(graft, make_jar("other bytes"))


def test_a_damaged_upload_is_withdrawn(client: httpx.Client, graft: GraftServer) -> None:
    base = "org/sample/lib/1.1-graft.1/lib-1.1-graft.1"
    assert put(client, f"{base}.jar", make_jar("patched 1.1")).status_code == 201
    r = put(client, f"{base}.jar.sha1", b"0" * 40)
    assert r.status_code == 422 and "damaged" in r.text
    assert client.get(f"{base}.jar").status_code == 404
    assert put(client, f"{base}.jar", make_jar("patched 1.1")).status_code == 201  # retry works
    assert put(client, f"{base}.pom.sha1", b"0" * 40).status_code == 404  # no such file


@pytest.mark.parametrize(
    ("path", "data", "status", "message"),
    [
        ("org/acme/x/1.0/x-1.0.pom", b"<project><groupId>", 422, "does not parse"),
        ("org/acme/x/1.0/x-1.0.pom", b"<notproject/>", 422, "not <project>"),
        ("org/acme/x/1.0/x-1.0.pom", pom_xml("org.acme", "y", "1.0"), 422, "org.acme:y:1.0"),
        ("org/acme/x/1.0/x-1.0.pom", b'<!DOCTYPE x [<!ENTITY a "b">]><project/>', 422, "parse"),
        ("org/acme/x/1.0/x-1.0.jar", b"not a zip", 422, "not a zip"),
        ("org/acme/x/1.0/x-1.0.jar.asc", b"hello", 422, "PGP"),
        ("org/acme/x/1.0/y-1.0.jar", make_jar("y"), 400, "not a file of"),
        ("org/sample/lib/9.0-SNAPSHOT/lib-9.0-SNAPSHOT.jar", make_jar("s"), 409, "exists upstream"),
        ("org/sample/lib/1.5/lib-1.5.jar", make_jar("unmarked"), 409, "exists upstream"),
        ("org/sample/lib/9.9-graft.1/lib-9.9-graft.1.jar", make_jar("p"), 422, "no upstream"),
        ("org/sample/lib/2.0.graft.1/lib-2.0.graft.1.jar", make_jar("p"), 422, "-graft.1"),
        ("org/acme/x/1.0/x-1.0.jar", make_jar("x"), 422, "advisory"),
    ],
)
def test_bad_deploys_are_refused_and_store_nothing(
    client: httpx.Client, graft: GraftServer, path: str, data: bytes, status: int, message: str
) -> None:
    before = catalog(graft)
    headers = {"X-Graft-Fixes": "not-an-id"} if message == "advisory" else {}
    r = put(client, path, data, **headers)
    assert r.status_code == status, r.text
    assert message in r.text
    assert catalog(graft) == before
    assert not blob_exists(graft, data)


def test_claiming_a_name_makes_it_private(client: httpx.Client, first: MavenRepo) -> None:
    assert client.get("org/sample/claimed/1.0/claimed-1.0.jar").status_code == 200
    pom = pom_xml("org.sample", "claimed", "5.0")
    r = put(client, "org/sample/claimed/5.0/claimed-5.0.pom", pom, **{"X-Graft-Private": "true"})
    assert r.status_code == 201 and "private build" in r.text
    meta = client.get("org/sample/claimed/maven-metadata.xml").text
    assert "<version>5.0</version>" in meta and "<version>1.0</version>" not in meta
    before = len(first.requests)
    assert client.get("org/sample/claimed/1.0/claimed-1.0.pom").status_code == 404
    assert len(first.requests) == before  # never asked upstream again


def test_a_patched_build_of_a_missing_upstream_version_when_allowed(client: httpx.Client) -> None:
    path = "org/sample/lib/0.9-graft.1/lib-0.9-graft.1.pom"
    pom = pom_xml("org.sample", "lib", "0.9-graft.1")
    r = put(client, path, pom, **{"X-Graft-Allow-Missing-Upstream": "true"})
    assert r.status_code == 201


def test_an_artifact_no_upstream_has_deploys_as_private(
    client: httpx.Client, graft: GraftServer
) -> None:
    pom = pom_xml("com.acme.secret", "core", "1.0")
    r = put(client, "com/acme/secret/core/1.0/core-1.0.pom", pom)
    assert r.status_code == 201 and "private build of com.acme.secret:core 1.0" in r.text
    assert [k for f, k, *_ in catalog(graft) if "/secret/" in f] == ["private"]
    meta = client.get("com/acme/secret/core/maven-metadata.xml")
    assert meta.status_code == 200 and "<release>1.0</release>" in meta.text


def test_snapshot_deploys_and_their_metadata(client: httpx.Client, graft: GraftServer) -> None:
    d = "com/acme/snap/1.0-SNAPSHOT"
    pom = pom_xml("com.acme", "snap", "1.0-SNAPSHOT")
    for build in ("20240101.120000-1", "20240102.130000-2"):
        assert put(client, f"{d}/snap-1.0-{build}.pom", pom).status_code == 201
        assert put(client, f"{d}/snap-1.0-{build}.jar", make_jar(build)).status_code == 201
    sources = put(client, f"{d}/snap-1.0-20240101.120000-1-sources.jar", make_jar("src"))
    assert sources.status_code == 201
    again = put(client, f"{d}/snap-1.0-20240102.130000-2.jar", make_jar("rebuilt"))
    assert again.status_code == 201  # a SNAPSHOT file may be deployed again: it is replaced
    assert client.get(f"{d}/snap-1.0-20240102.130000-2.jar").content == make_jar("rebuilt")
    assert [f for f, *_ in catalog(graft)].count(f"{d}/snap-1.0-20240102.130000-2.jar") == 1
    assert put(client, f"{d}/maven-metadata.xml", b"<metadata/>").status_code == 201
    meta = client.get(f"{d}/maven-metadata.xml")
    assert meta.status_code == 200
    text = meta.text
    assert "<version>1.0-SNAPSHOT</version>" in text and "<buildNumber>2</buildNumber>" in text
    assert "<timestamp>20240102.130000</timestamp>" in text
    assert "<lastUpdated>20240102130000</lastUpdated>" in text
    jar = text.index("<extension>jar</extension>")
    assert text[jar : jar + 80].count("1.0-20240102.130000-2") == 1
    assert "<classifier>sources</classifier>" in text  # its newest build, 1
    assert client.get(f"{d}/maven-metadata.xml.sha1").text == hashlib.sha1(meta.content).hexdigest()
    top = client.get("com/acme/snap/maven-metadata.xml").text
    assert "<latest>1.0-SNAPSHOT</latest>" in top and "<release>" not in top


def test_snapshot_of_a_patched_build(client: httpx.Client, graft: GraftServer) -> None:
    path = "org/sample/lib/2.0-graft.2-SNAPSHOT/lib-2.0-graft.2-20240101.120000-1.jar"
    r = put(client, path, make_jar("patched snapshot"))
    assert r.status_code == 201 and "patched build of org.sample:lib 2.0-graft.2-SNAPSHOT" in r.text


# -- usage and the CLI --------------------------------------------------------------------------


def test_downloads_are_recorded_as_usage(client: httpx.Client, graft: GraftServer) -> None:
    assert client.get("org/sample/lib/2.0/lib-2.0.jar").status_code == 200
    assert client.get("org/sample/lib/2.0/lib-2.0.pom").status_code == 200
    assert client.get("org/sample/lib/2.0-graft.1/lib-2.0-graft.1.jar").status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sqlite3.connect(graft.data_dir / "graft.db") as db:
            rows = set(
                db.execute(
                    "SELECT package, version, served FROM library_entries WHERE ecosystem='maven'"
                ).fetchall()
            )
        if {
            ("org.sample:lib", "2.0", "upstream"),
            ("org.sample:lib", "2.0-graft.1", "patched"),
        } <= rows:
            break
        time.sleep(0.2)
    assert ("org.sample:lib", "2.0", "upstream") in rows
    assert ("org.sample:lib", "2.0-graft.1", "patched") in rows


def test_graft_publish_maven(graft: GraftServer, client: httpx.Client, tmp_path: Path) -> None:
    version = "1.0-graft.1"
    pom = tmp_path / f"shared-{version}.pom"
    pom.write_bytes(pom_xml("org.sample", "shared", version))
    jar = tmp_path / f"shared-{version}.jar"
    jar.write_bytes(make_jar("shared patched"))
    sources = tmp_path / f"shared-{version}-sources.jar"
    sources.write_bytes(make_jar("shared sources"))
    proc = graft.cli(
        "publish", "maven", str(pom), str(jar), str(sources),
        "--url", graft.url, "--token", graft.token, "--fixes", "CVE-2024-3333",
    )  # fmt: skip
    assert "org.sample:shared:1.0-graft.1 is published" in proc.stdout
    base = f"org/sample/shared/{version}/shared-{version}"
    assert client.get(f"{base}-sources.jar").content == sources.read_bytes()
    rows = [r for r in catalog(graft) if "/shared/" in r[0]]
    assert len(rows) == 3 and all(json.loads(r[3]) == ["CVE-2024-3333"] for r in rows)
    again = graft.cli(
        "publish", "maven", str(pom), "--url", graft.url, "--token", graft.token, check=False
    )
    assert again.returncode == 1 and "409" in again.stderr
    bad = tmp_path / "lib.jar"
    bad.write_bytes(b"x")
    wrong = graft.cli("publish", "maven", str(pom), str(bad), "--token", "t", check=False)
    assert wrong.returncode == 2 and "rename it" in wrong.stderr


def test_graft_configure_maven_and_gradle(graft: GraftServer) -> None:
    printed = graft.cli("configure", "maven", "--url", "https://graft.example.com").stdout
    assert "<mirrorOf>external:*</mirrorOf>" in printed
    assert "<url>https://graft.example.com/maven/</url>" in printed
    assert "<password>${env.GRAFT_TOKEN}</password>" in printed
    assert "<repository><id>graft</id>" in printed  # the repository-entry alternative
    assert 'url = uri("https://graft.example.com/maven/")' in printed  # and Gradle
    gradle = graft.cli("configure", "gradle", "--url", "http://127.0.0.1:8000").stdout
    assert 'System.getenv("GRAFT_TOKEN")' in gradle and "isAllowInsecureProtocol = true" in gradle


def test_a_huge_deploy_is_refused_before_its_body(graft: GraftServer) -> None:
    auth = base64.b64encode(f"x:{graft.token}".encode()).decode()
    with socket.create_connection(("127.0.0.1", graft.port), timeout=10) as s:
        s.sendall(
            b"PUT /maven/org/acme/huge/1.0/huge-1.0.jar HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Basic {auth}\r\nContent-Length: {50 << 30}\r\n".encode()
            + b"Connection: close\r\n\r\nPK"
        )
        head = s.recv(4096).decode("latin-1")
    assert head.split(" ", 2)[1] == "413" and "too large" in head


def test_another_organization_sees_none_of_these_builds(graft: GraftServer) -> None:
    graft.cli("org", "create", "beta")
    graft.cli("account", "create", "ci", "--org", "beta", "--service")
    made = graft.cli(
        "token", "create", "--org", "beta", "--account", "ci", "--scope", "read", "--json"
    )
    with httpx.Client(
        base_url=f"{graft.url}/maven/", auth=("x", json.loads(made.stdout)["token"])
    ) as beta:
        meta = beta.get("org/sample/lib/maven-metadata.xml")
        assert (
            meta.status_code == 200
            and "graft" not in meta.text
            and "<release>3.0</release>" in meta.text
        )
        assert beta.get("org/sample/lib/2.0-graft.1/lib-2.0-graft.1.jar").status_code == 404
        assert beta.get("com/acme/secret/core/1.0/core-1.0.pom").status_code == 404
        claimed = beta.get("org/sample/claimed/maven-metadata.xml").text  # not private for beta
        assert "<version>1.0</version>" in claimed and "<version>5.0</version>" not in claimed
