"""The real `mvn` against a running `graft serve`: resolution through Graft (exact version, the
patched version, a range that picks the patched build from maven-metadata.xml) with
--strict-checksums, `mvn deploy`, `deploy:deploy-file`, and a wrong token.

The only remote any mvn here talks to is Graft; Graft's upstream is a local static repository
holding the artifacts these tests build plus the machine's plugin store (tests/fixtures/
maven_build.py says why and how)."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.maven_build import (
    DEPLOY_PLUGIN,
    M2_STORE,
    Maven,
    java_jar,
    require_maven,
    settings_xml,
    write_project,
)
from tests.fixtures.maven_repo import MavenRepo, write_artifact
from tests.integration.graftserver import GraftServer, free_port

GROUP = "com.example"
LIB = "demo-lib"
BIG_SOURCE = {
    "big/Big.java": "package big; public class Big { public static int n() { return 7; } }"
}
HELLO = 'package demo;\npublic class Hello {\n  public static String hi() { return "%s"; }\n%s}\n'


def hello(text: str, extra: str = "") -> dict[str, str]:
    return {"demo/Hello.java": HELLO % (text, extra)}


@pytest.fixture(scope="module")
def mvn_available() -> str:
    return require_maven()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, mvn_available: str) -> Path:
    """The upstream: demo-lib 1.0 and 1.1, built with javac."""
    root = tmp_path_factory.mktemp("maven-upstream")
    work = tmp_path_factory.mktemp("javac")
    for version in ("1.0", "1.1"):
        jar = java_jar(work / version, hello(f"upstream {version}"))
        write_artifact(root, GROUP, LIB, version, jar=jar)
    # a jar above GRAFT_BLOB_REDIRECT_MIN_BYTES: Graft redirects it to the blob server
    big = io.BytesIO(java_jar(work / "big", BIG_SOURCE))
    with zipfile.ZipFile(big, "a") as z:
        z.writestr(zipfile.ZipInfo("noise.bin"), random.Random(6).randbytes(6 << 20))
    write_artifact(root, GROUP, "big-lib", "1.0", jar=big.getvalue())
    return root


@pytest.fixture(scope="module")
def upstream(tree: Path) -> Iterator[MavenRepo]:
    with MavenRepo(tree, computed=(M2_STORE,)) as repo:
        yield repo


@pytest.fixture(scope="module")
def graft(tmp_path_factory: pytest.TempPathFactory, upstream: MavenRepo) -> Iterator[GraftServer]:
    upstreams = [{"ecosystem": "maven", "name": "local", "url": upstream.url}]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-maven") / "data",
        upstream=json.dumps(upstreams),
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
        blob_server_port=free_port(),  # large files go out through the zero-copy blob server
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def maven(tmp_path_factory: pytest.TempPathFactory, graft: GraftServer) -> Maven:
    printed = graft.cli("configure", "maven", "--url", graft.url).stdout
    return Maven(tmp_path_factory.mktemp("mvn"), settings_xml(printed))


def consumer(root: Path, version: str, uses: str = "hi") -> Path:
    source = (
        "package app;\npublic class App {\n"
        f"  public static void main(String[] a) {{ System.out.println(demo.Hello.{uses}()); }}\n"
        "}\n"
    )
    return write_project(
        root,
        "com.example.app",
        "app",
        "1.0",
        sources={"app/App.java": source},
        dependencies=((GROUP, LIB, version),),
    )


def held(maven: Maven, version: str) -> bytes:
    jar = maven.local_repo / "com/example/demo-lib" / version / f"demo-lib-{version}.jar"
    return jar.read_bytes()


def test_compile_resolves_an_upstream_version_with_strict_checksums(
    maven: Maven, graft: GraftServer, upstream: MavenRepo, tmp_path: Path
) -> None:
    proc = maven.run(consumer(tmp_path / "app", "1.0"), "compile", token=graft.token)
    assert "BUILD SUCCESS" in proc.stdout
    assert (
        held(maven, "1.0")
        == (upstream.roots[0] / f"com/example/{LIB}/1.0/{LIB}-1.0.jar").read_bytes()
    )
    # plugins came through Graft too, verified against the upstream's .sha1
    assert upstream.count("maven-compiler-plugin-3.13.0.jar") == 1
    assert upstream.count("maven-compiler-plugin-3.13.0.jar.sha1") == 1
    # the printed settings make Maven send the token at once: no challenge round trips
    assert statuses(graft).get(401, 0) == 0


def statuses(graft: GraftServer) -> dict[int, int]:
    time.sleep(0.3)  # the access log is written in batches
    found: dict[int, int] = {}
    for line in graft.log_path.read_text().splitlines():
        if line.startswith("{"):
            status = json.loads(line)["status"]
            found[status] = found.get(status, 0) + 1
    return found


def test_a_large_jar_comes_through_the_blob_server(
    maven: Maven, graft: GraftServer, upstream: MavenRepo, tmp_path: Path
) -> None:
    app = write_project(
        tmp_path / "app",
        "com.example.app",
        "big-app",
        "1.0",
        sources={"app/App.java": "package app; class App { int n = big.Big.n(); }"},
        dependencies=((GROUP, "big-lib", "1.0"),),
    )
    assert "BUILD SUCCESS" in maven.run(app, "compile", token=graft.token).stdout
    path = "com/example/big-lib/1.0/big-lib-1.0.jar"
    got = (maven.local_repo / path).read_bytes()
    assert got == (upstream.roots[0] / path).read_bytes()
    r = httpx.get(f"{graft.url}/maven/{path}", auth=("x", graft.token))
    assert r.status_code == 302 and r.headers["location"]  # Maven followed this redirect


def test_maven_sends_the_token_after_the_challenge(
    maven: Maven, graft: GraftServer, tmp_path: Path
) -> None:
    """Without the preemptive settings Maven asks without credentials first: the 401 must
    carry a Basic challenge, or Maven never sends the token."""
    plain = re.sub(
        r"\s*<configuration>.*?</configuration>", "", maven.settings.read_text(), flags=re.S
    )
    plain = re.sub(r"\s*<profiles>.*?</activeProfiles>", "", plain, flags=re.S)
    assert "preemptive" not in plain.lower()
    challenged = Maven(tmp_path / "mvn", plain)
    before = statuses(graft).get(401, 0)
    proc = challenged.run(consumer(tmp_path / "app", "1.1"), "compile", token=graft.token)
    assert "BUILD SUCCESS" in proc.stdout
    assert statuses(graft).get(401, 0) > before


PATCHED = "1.1-graft.1"


@pytest.fixture(scope="module")
def deployed(maven: Maven, graft: GraftServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mvn deploy` of a patched build of demo-lib 1.1 whose POM declares what it fixes."""
    project = write_project(
        tmp_path_factory.mktemp("patched") / "demo-lib",
        GROUP,
        LIB,
        PATCHED,
        sources=hello("patched 1.1", '  public static String patched() { return "yes"; }\n'),
        properties={"graft.fixes": "CVE-2024-0001, GHSA-abcd-efgh-ijkl"},
        deploy_url=f"{graft.url}/maven/",
    )
    proc = maven.run(project, "deploy", token=graft.token)
    assert "BUILD SUCCESS" in proc.stdout
    assert f"Uploaded to graft: {graft.url}/maven/com/example/{LIB}/{PATCHED}/" in proc.stdout
    return project


def test_deploy_stores_a_patched_build_with_its_fixes(deployed: Path, graft: GraftServer) -> None:
    base = f"{graft.url}/maven/com/example/{LIB}/{PATCHED}/{LIB}-{PATCHED}"
    auth = ("any", graft.token)
    jar = httpx.get(f"{base}.jar", auth=auth)
    assert jar.status_code == 200
    built = (deployed / "target" / f"{LIB}-{PATCHED}.jar").read_bytes()
    assert jar.content == built
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        r = httpx.get(f"{base}.jar.{algorithm}", auth=auth)
        assert r.status_code == 200 and r.text == hashlib.new(algorithm, built).hexdigest()
    with sqlite3.connect(graft.data_dir / "graft.db") as db:
        rows = db.execute(
            "SELECT filename, kind, upstream_version, fixes FROM catalog_artifacts "
            "WHERE package = ? ORDER BY filename",
            (f"{GROUP}:{LIB}",),
        ).fetchall()
    assert [(Path(f).name, k, u) for f, k, u, _ in rows] == [
        (f"{LIB}-{PATCHED}.jar", "patched", "1.1"),
        (f"{LIB}-{PATCHED}.pom", "patched", "1.1"),
    ]
    assert {tuple(json.loads(f)) for *_, f in rows} == {("CVE-2024-0001", "GHSA-abcd-efgh-ijkl")}


def test_redeploying_a_release_is_refused(deployed: Path, maven: Maven, graft: GraftServer) -> None:
    proc = maven.run(deployed, "deploy", token=graft.token, check=False)
    assert proc.returncode != 0
    assert "409" in proc.stdout


def test_metadata_lists_the_patched_build_as_latest_and_release(
    deployed: Path, graft: GraftServer
) -> None:
    r = httpx.get(
        f"{graft.url}/maven/com/example/{LIB}/maven-metadata.xml", auth=("x", graft.token)
    )
    assert r.status_code == 200
    assert "<latest>1.1-graft.1</latest>" in r.text and "<release>1.1-graft.1</release>" in r.text
    assert r.text.index("<version>1.0</version>") < r.text.index("<version>1.1</version>")
    assert r.text.index("<version>1.1</version>") < r.text.index("<version>1.1-graft.1</version>")
    again = httpx.get(r.url, auth=("x", graft.token), headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    sha1 = httpx.get(f"{r.url}.sha1", auth=("x", graft.token)).text
    assert sha1 == hashlib.sha1(r.content).hexdigest()


@pytest.mark.parametrize(
    ("spec", "uses"),
    [(PATCHED, "patched"), ("[1.0,2.0)", "patched")],
    ids=["exact-patched", "range"],
)
def test_compile_resolves_the_patched_build(
    deployed: Path, maven: Maven, graft: GraftServer, tmp_path: Path, spec: str, uses: str
) -> None:
    # Hello.patched() exists only in the patched jar: the compile proves which one was used.
    proc = maven.run(consumer(tmp_path / "app", spec, uses), "compile", token=graft.token)
    assert "BUILD SUCCESS" in proc.stdout
    assert held(maven, PATCHED) == (deployed / "target" / f"{LIB}-{PATCHED}.jar").read_bytes()


def test_deploy_file_of_a_private_artifact(
    maven: Maven, graft: GraftServer, tmp_path: Path
) -> None:
    jar = java_jar(tmp_path / "javac", {"acme/Tool.java": "package acme; public class Tool {}"})
    (tmp_path / "tool.jar").write_bytes(jar)
    proc = maven.run(
        tmp_path,
        f"{DEPLOY_PLUGIN}:deploy-file",
        "-Dfile=tool.jar",
        "-DgroupId=com.acme.internal",
        "-DartifactId=tool",
        "-Dversion=2.0",
        "-Dpackaging=jar",
        "-DrepositoryId=graft",
        f"-Durl={graft.url}/maven/",
        token=graft.token,
    )
    assert "BUILD SUCCESS" in proc.stdout
    base = f"{graft.url}/maven/com/acme/internal/tool"
    r = httpx.get(f"{base}/2.0/tool-2.0.jar", auth=("x", graft.token))
    assert r.status_code == 200 and r.content == jar
    pom = httpx.get(f"{base}/2.0/tool-2.0.pom", auth=("x", graft.token))
    assert pom.status_code == 200 and b"<artifactId>tool</artifactId>" in pom.content
    meta = httpx.get(f"{base}/maven-metadata.xml", auth=("x", graft.token))
    assert "<release>2.0</release>" in meta.text


def test_a_wrong_token_fails_with_401(maven: Maven, graft: GraftServer, tmp_path: Path) -> None:
    bad = "graft_" + "A" * 49
    proc = maven.run(consumer(tmp_path / "app", "1.1"), "compile", token=bad, check=False)
    assert proc.returncode != 0
    assert "401" in proc.stdout, proc.stdout[-3000:]


def test_snapshot_deploys_and_resolves_the_newest_build(
    maven: Maven, graft: GraftServer, tmp_path: Path
) -> None:
    """A private SNAPSHOT deployed twice; a consumer (Graft as a repository: the mirrored
    Central allows no snapshots) compiles against the second build's API."""
    lib = ("com.example.internal", "snaplib", "1.0-SNAPSHOT")
    for n, extra in enumerate(("", '  public static String second() { return "2"; }\n'), 1):
        project = write_project(
            tmp_path / f"build{n}",
            *lib,
            sources=hello(f"snapshot build {n}", extra),
            deploy_url=f"{graft.url}/maven/",
        )
        assert "BUILD SUCCESS" in maven.run(project, "deploy", token=graft.token).stdout
    meta = httpx.get(
        f"{graft.url}/maven/com/example/internal/snaplib/1.0-SNAPSHOT/maven-metadata.xml",
        auth=("x", graft.token),
    )
    assert "<buildNumber>2</buildNumber>" in meta.text
    fresh = Maven(tmp_path / "mvn", maven.settings.read_text())  # an empty local repository
    app = write_project(
        tmp_path / "app",
        "com.example.app",
        "snap-app",
        "1.0",
        sources={"app/App.java": "package app; class App { String s = demo.Hello.second(); }"},
        dependencies=(lib,),
    )
    proc = fresh.run(app, "-Pgraft-repository", "compile", token=graft.token)
    assert "BUILD SUCCESS" in proc.stdout
    assert "snaplib-1.0-20" in proc.stdout and "-2.jar" in proc.stdout  # the timestamped build 2
