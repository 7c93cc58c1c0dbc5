"""The /npm registry API against a running `graft serve` and a local upstream registry: the
wire format clients rely on, verification of upstream files, and refusal of bad input."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.npm_packages import make_package
from tests.fixtures.npm_registry import NpmRegistry
from tests.integration.graftserver import GraftServer

ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


def auth(srv: GraftServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {srv.token}"}


def get(srv: GraftServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(srv.url + path, headers={**auth(srv), **headers}, timeout=30)


def blobs(srv: GraftServer) -> set[str]:
    root = srv.data_dir / "blobs" / "sha256"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def token(srv: GraftServer, scope: str) -> str:
    out = srv.cli(
        "token", "create", "--org", "demo", "--account", "admin", "-s", scope, "--json"
    ).stdout
    return str(json.loads(out)["token"])


def test_full_packument_rewrites_tarballs_and_keeps_digests(
    npm_graft: GraftServer, npm_upstream: NpmRegistry
) -> None:
    r = get(npm_graft, "/npm/left-pad")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    upstream = npm_upstream.packument("left-pad")
    assert doc["name"] == "left-pad"
    assert doc["dist-tags"] == {"latest": "1.1.0"}
    assert set(doc["versions"]) == {"1.0.0", "1.1.0", "2.0.0-beta.1"}
    assert doc["readme"] == "# left-pad\n" and "_rev" not in doc
    for version, vdoc in doc["versions"].items():
        dist, theirs = vdoc["dist"], upstream["versions"][version]["dist"]
        assert dist["tarball"] == f"{npm_graft.url}/npm/left-pad/-/left-pad-{version}.tgz"
        assert (dist["integrity"], dist["shasum"]) == (theirs["integrity"], theirs["shasum"])
    assert doc["time"]["1.0.0"] == upstream["time"]["1.0.0"]


def test_abbreviated_packument(npm_graft: GraftServer) -> None:
    r = get(npm_graft, "/npm/@acme/util", Accept=ABBREVIATED)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.npm.install-v1+json"
    assert "Accept" in r.headers["vary"]
    doc = r.json()
    assert set(doc) == {"name", "modified", "dist-tags", "versions"}
    v = doc["versions"]["2.0.0"]
    assert v["dependencies"] == {"left-pad": "^1.0.0"}
    assert "description" not in v and "main" not in v
    assert v["dist"]["tarball"] == f"{npm_graft.url}/npm/@acme/util/-/util-2.0.0.tgz"
    # the full form is still what a plain Accept gets
    assert "description" in get(npm_graft, "/npm/@acme/util").json()["versions"]["2.0.0"]


@pytest.mark.parametrize("path", ["/npm/@acme/util", "/npm/@acme%2futil", "/npm/@acme%2Futil"])
def test_scoped_name_spellings(npm_graft: GraftServer, path: str) -> None:
    r = get(npm_graft, path)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "@acme/util"


@pytest.mark.parametrize(
    "path", ["/npm/@acme%252futil", "/npm/..%2fetc", "/npm/.hidden", "/npm/@acme/..", "/npm/a%20b"]
)
def test_bad_names_are_not_found(npm_graft: GraftServer, path: str) -> None:
    r = get(npm_graft, path)
    assert r.status_code == 404, (path, r.status_code, r.text)
    assert "error" in r.json()


def test_packument_etag_and_304(npm_graft: GraftServer) -> None:
    first = get(npm_graft, "/npm/left-pad", Accept=ABBREVIATED)
    etag = first.headers["etag"]
    again = get(npm_graft, "/npm/left-pad", Accept=ABBREVIATED, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert get(npm_graft, "/npm/left-pad").headers["etag"] != etag  # the other form


def test_public_url_comes_from_the_request_host(npm_graft: GraftServer) -> None:
    r = get(npm_graft, "/npm/left-pad", Host="graft.example.com")
    tarball = r.json()["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball == "http://graft.example.com/npm/left-pad/-/left-pad-1.0.0.tgz"


def test_version_documents_and_tags(npm_graft: GraftServer) -> None:
    assert get(npm_graft, "/npm/left-pad/1.0.0").json()["version"] == "1.0.0"
    assert get(npm_graft, "/npm/left-pad/latest").json()["version"] == "1.1.0"
    assert get(npm_graft, "/npm/@acme%2futil/2.0.0").json()["name"] == "@acme/util"
    r = get(npm_graft, "/npm/left-pad/9.9.9")
    assert r.status_code == 404 and "left-pad@9.9.9" in r.json()["error"]


def test_tarball_download_etag_range_and_cache(
    npm_graft: GraftServer, npm_upstream: NpmRegistry
) -> None:
    path = "/npm/is-thing/-/is-thing-3.2.1.tgz"
    r = get(npm_graft, path)
    assert r.status_code == 200
    tb = npm_upstream.packages["is-thing"]["3.2.1"]
    assert hashlib.sha512(r.content).hexdigest() == tb.sha512
    etag = r.headers["etag"]
    assert get(npm_graft, path, **{"If-None-Match": etag}).status_code == 304
    part = get(npm_graft, path, Range="bytes=0-9")
    assert part.status_code == 206 and part.content == r.content[:10]
    head = httpx.head(npm_graft.url + path, headers=auth(npm_graft))
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(r.content)
    fetched = [p for _, p in npm_upstream.requests if p.endswith("/is-thing-3.2.1.tgz")]
    assert len(fetched) == 1  # pulled through once, then served from the blob store


def test_large_tarball_streams_verified(npm_graft: GraftServer, npm_upstream: NpmRegistry) -> None:
    r = get(npm_graft, "/npm/big-pkg/-/big-pkg-1.0.0.tgz")
    assert r.status_code == 200
    assert hashlib.sha512(r.content).hexdigest() == npm_upstream.packages["big-pkg"]["1.0.0"].sha512


def test_corrupt_upstream_tarball_is_refused_and_not_cached(
    tmp_path: Path, npm_upstream: NpmRegistry
) -> None:
    tgz = make_package(tmp_path, "corrupted", "1.0.0")
    tb = npm_upstream.add(tgz)
    npm_upstream.corrupt.add(tb.filename)
    srv = _fresh_server(tmp_path, npm_upstream)
    try:
        assert get(srv, "/npm/corrupted").status_code == 200
        before = blobs(srv)  # the packument itself is kept for restarts
        r = get(srv, "/npm/corrupted/-/corrupted-1.0.0.tgz")
        assert r.status_code == 502
        assert "nothing was cached" in r.json()["error"]
        assert "sha512" in r.json()["error"] or "sha1" in r.json()["error"]
        assert blobs(srv) == before
    finally:
        srv.stop()
        npm_upstream.corrupt.discard(tb.filename)


def test_wrong_integrity_in_upstream_packument_is_refused(
    tmp_path: Path, npm_upstream: NpmRegistry
) -> None:
    tgz = make_package(tmp_path, "lying", "1.0.0")
    npm_upstream.add(tgz)
    npm_upstream.wrong_integrity.add("lying@1.0.0")
    srv = _fresh_server(tmp_path, npm_upstream)
    try:
        r = get(srv, "/npm/lying/-/lying-1.0.0.tgz")
        assert r.status_code == 502 and "nothing was cached" in r.json()["error"]
        assert hashlib.sha256(tgz.read_bytes()).hexdigest() not in blobs(srv)
    finally:
        srv.stop()


def test_malformed_upstream_packument_is_a_clear_502(
    tmp_path: Path, npm_upstream: NpmRegistry
) -> None:
    npm_upstream.malformed.add("broken")
    try:
        r = get(_running(tmp_path, npm_upstream), "/npm/broken")
        assert r.status_code == 502
        assert "not valid JSON" in r.json()["error"]
    finally:
        npm_upstream.malformed.discard("broken")


_SERVERS: dict[str, GraftServer] = {}


def _fresh_server(tmp_path: Path, upstream: NpmRegistry) -> GraftServer:
    cfg = [{"ecosystem": "npm", "name": "local", "url": upstream.url}]
    return GraftServer(
        tmp_path / "graft", upstream=json.dumps(cfg), auth_failure_limit=1000
    ).start()


def _running(tmp_path: Path, upstream: NpmRegistry) -> GraftServer:
    srv = _fresh_server(tmp_path, upstream)
    _SERVERS[str(tmp_path)] = srv
    return srv


@pytest.fixture(autouse=True)
def _stop_servers() -> Any:
    yield
    while _SERVERS:
        _SERVERS.popitem()[1].stop()


# -- publishing over HTTP, as npm publish does ---------------------------------------------------
def publish_doc(tgz: Path, name: str, version: str, **overrides: Any) -> dict[str, Any]:
    data = tgz.read_bytes()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    doc: dict[str, Any] = {
        "_id": name,
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {
            version: {
                "name": name,
                "version": version,
                "dist": {"integrity": integrity, "shasum": hashlib.sha1(data).hexdigest()},
            }
        },
        "_attachments": {
            f"{name}-{version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(data).decode(),
                "length": len(data),
            }
        },
    }
    doc.update(overrides)
    return doc


def put(srv: GraftServer, name: str, doc: object, tok: str | None = None) -> httpx.Response:
    escaped = name.replace("/", "%2f")
    headers = {"Authorization": f"Bearer {tok or srv.token}"}
    return httpx.put(f"{srv.url}/npm/{escaped}", json=doc, headers=headers, timeout=60)


def test_publish_private_package_then_refuse_republish(
    npm_graft: GraftServer, tmp_path: Path
) -> None:
    tgz = make_package(tmp_path, "@corp/secret", "1.0.0")
    r = put(npm_graft, "@corp/secret", publish_doc(tgz, "@corp/secret", "1.0.0"))
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "private"
    doc = get(npm_graft, "/npm/@corp%2fsecret").json()
    assert doc["dist-tags"] == {"latest": "1.0.0"}
    assert doc["versions"]["1.0.0"]["description"] == "test package @corp/secret"
    got = get(npm_graft, "/npm/@corp/secret/-/secret-1.0.0.tgz")
    assert got.status_code == 200 and got.content == tgz.read_bytes()
    again = put(npm_graft, "@corp/secret", publish_doc(tgz, "@corp/secret", "1.0.0"))
    assert again.status_code == 409
    assert "cannot publish over the previously published version" in again.json()["error"]


def test_publish_refuses_bad_input_and_stores_nothing(
    npm_graft: GraftServer, tmp_path: Path
) -> None:
    tgz = make_package(tmp_path, "@corp/bad", "1.0.0")
    good = publish_doc(tgz, "@corp/bad", "1.0.0")
    before = blobs(npm_graft)

    wrong = json.loads(json.dumps(good))
    wrong["versions"]["1.0.0"]["dist"]["integrity"] = (
        "sha512-" + base64.b64encode(hashlib.sha512(b"other").digest()).decode()
    )
    r = put(npm_graft, "@corp/bad", wrong)
    assert r.status_code == 422 and "sha512" in r.json()["error"]

    short = json.loads(json.dumps(good))
    short["_attachments"]["@corp/bad-1.0.0.tgz"]["length"] = 3
    assert put(npm_graft, "@corp/bad", short).status_code == 422

    not_b64 = json.loads(json.dumps(good))
    not_b64["_attachments"]["@corp/bad-1.0.0.tgz"]["data"] = "***"
    assert "base64" in put(npm_graft, "@corp/bad", not_b64).json()["error"]

    (tmp_path / "x.tgz").write_bytes(b"not a tarball")
    r = put(npm_graft, "@corp/bad", publish_doc(tmp_path / "x.tgz", "@corp/bad", "1.0.0"))
    assert r.status_code == 422 and "gzip" in r.json()["error"]

    other = put(npm_graft, "@corp/other", good)
    assert other.status_code == 422  # the document names another package

    garbage = httpx.put(
        f"{npm_graft.url}/npm/@corp%2fbad",
        content=b'{"versions": ',
        headers={**auth(npm_graft), "Content-Type": "application/json"},
    )
    assert garbage.status_code == 422 and "JSON" in garbage.json()["error"]
    no_attachment = {k: v for k, v in good.items() if k != "_attachments"}
    assert "publishes only" in put(npm_graft, "@corp/bad", no_attachment).json()["error"]

    assert blobs(npm_graft) == before
    assert get(npm_graft, "/npm/@corp/bad").status_code == 404


def test_publish_needs_a_publish_token(npm_graft: GraftServer, tmp_path: Path) -> None:
    tgz = make_package(tmp_path, "@corp/scoped", "1.0.0")
    doc = publish_doc(tgz, "@corp/scoped", "1.0.0")
    r = put(npm_graft, "@corp/scoped", doc, tok=token(npm_graft, "read"))
    assert r.status_code == 403 and "publish" in r.json()["error"]
    r = httpx.put(f"{npm_graft.url}/npm/@corp%2fscoped", json=doc)
    assert r.status_code == 401 and r.json()["error"]
    assert "www-authenticate" not in r.headers  # npm would print the challenge instead


def test_publish_over_an_upstream_name_is_refused(npm_graft: GraftServer, tmp_path: Path) -> None:
    tgz = make_package(tmp_path, "left-pad", "7.0.0")
    r = put(npm_graft, "left-pad", publish_doc(tgz, "left-pad", "7.0.0"))
    assert r.status_code == 403
    assert "exists upstream" in r.json()["error"] and "7.0.0-graft.1" in r.json()["error"]


def test_patched_build_is_merged_into_the_upstream_packument(
    npm_graft: GraftServer, tmp_path: Path
) -> None:
    tgz = make_package(tmp_path, "left-pad", "1.0.0-graft.1")
    doc = publish_doc(
        tgz,
        "left-pad",
        "1.0.0-graft.1",
        **{"dist-tags": {"patched": "1.0.0-graft.1", "latest": "1.0.0-graft.1"}},
    )
    r = put(npm_graft, "left-pad", doc)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "patched" and r.json()["dist-tags"] == ["patched"]
    full = get(npm_graft, "/npm/left-pad").json()
    assert full["dist-tags"] == {"latest": "1.1.0", "patched": "1.0.0-graft.1"}
    assert full["versions"]["1.0.0-graft.1"]["_graft"]["upstream_version"] == "1.0.0"
    assert "1.0.0" in full["versions"] and "1.1.0" in full["versions"]
    abbrev = get(npm_graft, "/npm/left-pad", Accept=ABBREVIATED).json()
    assert "_graft" not in abbrev["versions"]["1.0.0-graft.1"]
    tarball = abbrev["versions"]["1.0.0-graft.1"]["dist"]["tarball"]
    assert httpx.get(tarball, headers=auth(npm_graft)).content == tgz.read_bytes()

    missing = make_package(tmp_path / "m", "left-pad", "5.5.5-graft.1")
    r = put(npm_graft, "left-pad", publish_doc(missing, "left-pad", "5.5.5-graft.1"))
    assert r.status_code == 422 and "no upstream has" in r.json()["error"]


def test_graft_publish_npm_records_fixes(npm_graft: GraftServer, tmp_path: Path) -> None:
    tgz = make_package(tmp_path, "@acme/util", "2.0.0-graft.1")
    proc = npm_graft.cli(
        "publish",
        "npm",
        str(tgz),
        "--url",
        npm_graft.url,
        "--token",
        npm_graft.token,
        "--fixes",
        "CVE-2024-1111",
        "--fixes",
        "GHSA-abcd-efgh-ijkl",
        "--tag",
        "patched",
    )
    assert (
        "@acme/util@2.0.0-graft.1 (patched build, fixes CVE-2024-1111, GHSA-abcd-efgh-ijkl"
        in proc.stdout
    )
    full = get(npm_graft, "/npm/@acme/util").json()
    assert full["versions"]["2.0.0-graft.1"]["_graft"]["fixes"] == [
        "CVE-2024-1111",
        "GHSA-abcd-efgh-ijkl",
    ]
    assert full["dist-tags"]["patched"] == "2.0.0-graft.1"
    with sqlite3.connect(npm_graft.data_dir / "graft.db") as db:
        row = db.execute(
            "SELECT kind, upstream_version, fixes FROM catalog_artifacts WHERE package = ?",
            ("@acme/util",),
        ).fetchone()
    assert (
        row[0] == "patched"
        and row[1] == "2.0.0"
        and json.loads(row[2])
        == [
            "CVE-2024-1111",
            "GHSA-abcd-efgh-ijkl",
        ]
    )
    again = npm_graft.cli(
        "publish",
        "npm",
        str(tgz),
        "--url",
        npm_graft.url,
        "--token",
        npm_graft.token,
        check=False,
    )
    assert again.returncode == 1 and "409" in again.stderr


def test_dist_tags(npm_graft: GraftServer) -> None:
    base = f"{npm_graft.url}/npm/-/package/left-pad/dist-tags"
    r = httpx.put(f"{base}/stable", json="1.0.0", headers=auth(npm_graft))
    assert r.status_code == 200, r.text
    assert httpx.get(base, headers=auth(npm_graft)).json()["stable"] == "1.0.0"
    assert get(npm_graft, "/npm/left-pad").json()["dist-tags"]["stable"] == "1.0.0"
    bad = httpx.put(f"{base}/stable", json="9.9.9", headers=auth(npm_graft))
    assert bad.status_code == 404
    assert httpx.put(f"{base}/1.x", json="1.0.0", headers=auth(npm_graft)).status_code == 422
    assert httpx.delete(f"{base}/stable", headers=auth(npm_graft)).status_code == 200
    assert "stable" not in httpx.get(base, headers=auth(npm_graft)).json()
    gone = httpx.delete(f"{base}/latest", headers=auth(npm_graft))
    assert gone.status_code == 404 and "upstream" in gone.json()["error"]


def test_whoami_ping_search_and_audit(npm_graft: GraftServer) -> None:
    assert get(npm_graft, "/npm/-/whoami").json() == {"username": "admin"}
    assert get(npm_graft, "/npm/-/ping").status_code == 200
    found = get(npm_graft, "/npm/-/v1/search?text=pad&size=5").json()
    assert "left-pad" in [o["package"]["name"] for o in found["objects"]]
    body = gzip.compress(json.dumps({"left-pad": ["1.0.0"]}).encode())
    r = httpx.post(
        f"{npm_graft.url}/npm/-/npm/v1/security/advisories/bulk",
        content=body,
        headers={**auth(npm_graft), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 200 and r.json() == {}
    quick = httpx.post(
        f"{npm_graft.url}/npm/-/npm/v1/security/audits/quick",
        json={
            "name": "x",
            "requires": {"left-pad": "^1.0.0"},
            "dependencies": {"left-pad": {"version": "1.1.0"}},
        },
        headers=auth(npm_graft),
    ).json()
    assert quick["metadata"]["vulnerabilities"]["critical"] == 0
    assert quick["metadata"]["totalDependencies"] == 1 and quick["advisories"] == {}
    assert (
        httpx.post(
            f"{npm_graft.url}/npm/-/npm/v1/security/advisories/bulk",
            content=b"[1, 2",
            headers=auth(npm_graft),
        ).status_code
        == 422
    )


def test_every_endpoint_answers_401_without_a_valid_token(npm_graft: GraftServer) -> None:
    for method, path in [
        ("GET", "/npm/left-pad"),
        ("GET", "/npm/left-pad/-/left-pad-1.0.0.tgz"),
        ("GET", "/npm/-/whoami"),
        ("GET", "/npm/-/v1/search?text=x"),
        ("PUT", "/npm/left-pad"),
        ("POST", "/npm/-/npm/v1/security/advisories/bulk"),
    ]:
        for headers in ({}, {"Authorization": "Bearer graft_wrong"}):
            r = httpx.request(method, npm_graft.url + path, headers=headers, content=b"{}")
            assert r.status_code == 401, (method, path)
            assert r.json()["error"]


def test_downloads_are_recorded_as_usage(npm_graft: GraftServer) -> None:
    assert get(npm_graft, "/npm/left-pad/-/left-pad-1.1.0.tgz").status_code == 200
    time.sleep(0.8)  # usage is flushed every 0.2 s
    with sqlite3.connect(npm_graft.data_dir / "graft.db") as db:
        rows = db.execute(
            "SELECT package, version, served FROM library_entries WHERE ecosystem = 'npm'"
        ).fetchall()
    assert ("left-pad", "1.1.0", "upstream") in rows


def test_public_url_stale_upstream_and_private_claim(
    tmp_path: Path, npm_upstream: NpmRegistry
) -> None:
    cfg = [{"ecosystem": "npm", "name": "local", "url": npm_upstream.url, "ttl_seconds": 0}]
    srv = GraftServer(
        tmp_path / "graft",
        upstream=json.dumps(cfg),
        auth_failure_limit=1000,
        public_url="https://graft.example.com/base",
    ).start()
    try:
        doc = get(srv, "/npm/left-pad").json()
        tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
        assert tarball == "https://graft.example.com/base/npm/left-pad/-/left-pad-1.0.0.tgz"

        npm_upstream.down = True  # revalidation fails: the last good copy is served
        try:
            stale = get(srv, "/npm/left-pad")
            assert stale.status_code == 200 and "upstream unreachable" in stale.headers["warning"]
            assert get(srv, "/npm/never-fetched").status_code == 502
        finally:
            npm_upstream.down = False

        tgz = make_package(tmp_path / "own", "left-pad", "9.0.0")
        out = srv.cli(
            "publish", "npm", str(tgz), "--private", "--url", srv.url, "--token", srv.token
        ).stdout
        assert "left-pad@9.0.0 (private build, dist-tags: latest)" in out
        before = len(npm_upstream.requests)
        mine = get(srv, "/npm/left-pad").json()
        assert list(mine["versions"]) == ["9.0.0"] and mine["dist-tags"] == {"latest": "9.0.0"}
        assert get(srv, "/npm/left-pad/-/left-pad-1.0.0.tgz").status_code == 404
        assert len(npm_upstream.requests) == before  # a private name is never looked up upstream
    finally:
        srv.stop()
