"""`/pypi/` over HTTP against a running graft with a local upstream index."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures.dists import make_sdist, make_wheel, sha256_file, wheel_metadata
from tests.fixtures.simple_index import SimpleIndex, count
from tests.integration.graftserver import GraftServer

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"


def get(srv: GraftServer, path: str, **kw: object) -> httpx.Response:
    return httpx.get(f"{srv.url}{path}", auth=("rootio", srv.token), timeout=30, **kw)  # type: ignore[arg-type]


def upload(
    srv: GraftServer, path: Path, token: str | None = None, **fields: str | list[str]
) -> httpx.Response:
    data: dict[str, str | list[str]] = {":action": "file_upload", **fields}
    with path.open("rb") as fh:
        return httpx.post(
            f"{srv.url}/pypi/legacy/",
            data=data,
            files={"content": (path.name, fh, "application/octet-stream")},
            auth=("__token__", token or srv.token),
            timeout=60,
        )


def library(srv: GraftServer) -> list[tuple[str, str, str, int]]:
    time.sleep(0.6)  # usage is flushed every 0.2 s
    with sqlite3.connect(srv.data_dir / "graft.db") as db:
        rows = db.execute(
            "SELECT package, version, served, count FROM library_entries "
            "WHERE ecosystem='pypi' ORDER BY package, version, served"
        ).fetchall()
    return [tuple(r) for r in rows]


def test_project_page_json(pypi_graft: GraftServer) -> None:
    r = get(pypi_graft, "/pypi/simple/demo-pkg/", headers={"Accept": JSON})
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON
    assert r.headers["vary"] == "Accept"
    doc = r.json()
    assert doc["meta"]["api-version"] == "1.1"
    assert doc["name"] == "demo-pkg"
    assert doc["versions"] == ["1.0", "1.1", "2.0"]
    files = {f["filename"]: f for f in doc["files"]}
    wheel = files["demo_pkg-2.0-py3-none-any.whl"]
    assert wheel["url"] == "/pypi/files/demo-pkg/demo_pkg-2.0-py3-none-any.whl"
    assert wheel["requires-python"] == ">=3.8"
    assert len(wheel["hashes"]["sha256"]) == 64
    assert wheel["core-metadata"] == wheel["dist-info-metadata"]
    assert wheel["size"] > 0 and wheel["upload-time"].endswith("Z")
    assert "core-metadata" not in files["demo_pkg-1.0.tar.gz"]


def test_project_page_html(pypi_graft: GraftServer) -> None:
    for accept in (None, "text/html", HTML):
        headers = {"Accept": accept} if accept else {}
        r = get(pypi_graft, "/pypi/simple/demo-pkg/", headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(accept or "text/html")
        assert '<meta name="pypi:repository-version" content="1.1">' in r.text
        assert 'href="/pypi/files/demo-pkg/demo_pkg-2.0-py3-none-any.whl#sha256=' in r.text
        assert 'data-requires-python="&gt;=3.8"' in r.text
        assert 'data-core-metadata="sha256=' in r.text


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{JSON}, {HTML};q=0.2, text/html;q=0.01", JSON),
        (f"{JSON};q=0.1, {HTML};q=0.9", HTML),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("*/*", "text/html"),
        ("text/html;q=0.5, application/json", "text/html"),
    ],
)
def test_content_negotiation(pypi_graft: GraftServer, accept: str, expected: str) -> None:
    r = get(pypi_graft, "/pypi/simple/demo-pkg/", headers={"Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"].split(";")[0] == expected


def test_unacceptable_media_type_is_406(pypi_graft: GraftServer) -> None:
    r = get(pypi_graft, "/pypi/simple/demo-pkg/", headers={"Accept": "application/xml"})
    assert r.status_code == 406 and JSON in r.text


@pytest.mark.parametrize(
    "path", ["/pypi/simple/Demo_Pkg/", "/pypi/simple/demo.pkg/", "/pypi/simple/demo-pkg"]
)
def test_non_normalized_names_redirect(pypi_graft: GraftServer, path: str) -> None:
    r = get(pypi_graft, path)
    assert r.status_code == 301
    assert r.headers["location"] == "/pypi/simple/demo-pkg/"


def test_etag_revalidation_and_upstream_ttl(
    pypi_graft: GraftServer, pypi_upstream: SimpleIndex
) -> None:
    before = count(pypi_upstream, "/simple/httpish/")
    first = get(pypi_graft, "/pypi/simple/httpish/", headers={"Accept": JSON})
    etag = first.headers["etag"]
    again = get(
        pypi_graft, "/pypi/simple/httpish/", headers={"Accept": JSON, "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    for _ in range(20):
        get(pypi_graft, "/pypi/simple/httpish/", headers={"Accept": JSON})
    # Within the TTL the upstream was asked at most once for all of these.
    assert count(pypi_upstream, "/simple/httpish/") - before <= 1
    html = get(pypi_graft, "/pypi/simple/httpish/", headers={"Accept": "text/html"})
    assert html.headers["etag"] != etag


def test_project_list(pypi_graft: GraftServer) -> None:
    doc = get(pypi_graft, "/pypi/simple/", headers={"Accept": JSON}).json()
    names = {p["name"] for p in doc["projects"]}
    assert {"demo-pkg", "httpish", "depender"} <= names
    assert '<a href="/pypi/simple/demo-pkg/">demo-pkg</a>' in get(pypi_graft, "/pypi/simple/").text


def test_download_with_etag_range_and_hash(pypi_graft: GraftServer, dist_dir: Path) -> None:
    name = "demo_pkg-1.1-py3-none-any.whl"
    expected = sha256_file(dist_dir / "upstream" / name)
    r = get(pypi_graft, f"/pypi/files/demo-pkg/{name}")
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == expected
    assert r.headers["content-length"] == str(len(r.content))
    # Second time: from the blob store, with its digest as ETag, ranges and conditionals.
    r2 = get(pypi_graft, f"/pypi/files/demo-pkg/{name}")
    assert r2.headers["etag"] == f'"{expected}"'
    part = get(pypi_graft, f"/pypi/files/demo-pkg/{name}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == r.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(r.content)}"
    cached = get(
        pypi_graft, f"/pypi/files/demo-pkg/{name}", headers={"If-None-Match": f'"{expected}"'}
    )
    assert cached.status_code == 304


def test_core_metadata_is_served_and_verified(pypi_graft: GraftServer, dist_dir: Path) -> None:
    name = "demo_pkg-2.0-py3-none-any.whl"
    r = get(pypi_graft, f"/pypi/files/demo-pkg/{name}.metadata")
    assert r.status_code == 200
    assert r.content == wheel_metadata(dist_dir / "upstream" / name)
    assert get(pypi_graft, "/pypi/files/demo-pkg/demo_pkg-1.0.tar.gz.metadata").status_code == 404


def test_large_file_streams_through_and_is_cached(
    pypi_graft: GraftServer, pypi_upstream: SimpleIndex, dist_dir: Path
) -> None:
    name = "big_wheel-1.0-py3-none-any.whl"
    expected = sha256_file(dist_dir / "upstream" / name)
    assert (dist_dir / "upstream" / name).stat().st_size > 2 << 20  # beyond the 1 MiB buffer
    r = get(pypi_graft, f"/pypi/files/big-wheel/{name}")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == expected
    before = count(pypi_upstream, f"/files/{name}")
    assert get(pypi_graft, f"/pypi/files/big-wheel/{name}").content == r.content
    assert count(pypi_upstream, f"/files/{name}") == before


def test_concurrent_first_requests_cause_one_upstream_fetch(
    pypi_graft: GraftServer, pypi_upstream: SimpleIndex, dist_dir: Path
) -> None:
    make_wheel(dist_dir / "upstream", "slowpoke", "1.0")
    name = "slowpoke-1.0-py3-none-any.whl"
    pypi_upstream.delay = 1.0
    try:
        get(pypi_graft, "/pypi/simple/slowpoke/")
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(lambda _: get(pypi_graft, f"/pypi/files/slowpoke/{name}"), range(8))
            )
    finally:
        pypi_upstream.delay = 0.0
    assert {r.status_code for r in results} == {200}
    assert len({r.content for r in results}) == 1
    assert count(pypi_upstream, f"/files/{name}") == 1


def test_upstream_serving_wrong_bytes_is_502_and_nothing_cached(
    pypi_graft: GraftServer, pypi_upstream: SimpleIndex, dist_dir: Path
) -> None:
    make_wheel(dist_dir / "upstream", "tampered", "1.0")
    name = "tampered-1.0-py3-none-any.whl"
    pypi_upstream.corrupt.add(name)
    try:
        r = get(pypi_graft, f"/pypi/files/tampered/{name}")
        assert r.status_code == 502
        assert "index says" in r.text and "nothing was cached" in r.text
        blobs = pypi_graft.data_dir / "blobs" / "sha256"
        digest = sha256_file(dist_dir / "upstream" / name)
        assert not (blobs / digest[:2] / digest).exists()
        assert get(pypi_graft, f"/pypi/files/tampered/{name}").status_code == 502
    finally:
        pypi_upstream.corrupt.discard(name)


def test_missing_project_and_negative_cache(
    pypi_graft: GraftServer, pypi_upstream: SimpleIndex
) -> None:
    before = count(pypi_upstream, "/simple/no-such-project/")
    for _ in range(10):
        r = get(pypi_graft, "/pypi/simple/no-such-project/")
        assert r.status_code == 404
        assert "not found in Graft or its upstream" in r.text
    assert count(pypi_upstream, "/simple/no-such-project/") - before == 1
    assert get(pypi_graft, "/pypi/files/demo-pkg/demo_pkg-9.9-py3-none-any.whl").status_code == 404
    assert get(pypi_graft, "/pypi/files/demo-pkg/../../etc/passwd").status_code == 404
    assert get(pypi_graft, "/pypi/files/demo-pkg/not-a-dist.txt").status_code == 404


def test_yanked_files_stay_yanked(
    pypi_graft: GraftServer, pypi_upstream: SimpleIndex, dist_dir: Path
) -> None:
    make_wheel(dist_dir / "upstream", "yanky", "1.0")
    pypi_upstream.yanked["yanky-1.0-py3-none-any.whl"] = "broken build"
    doc = get(pypi_graft, "/pypi/simple/yanky/", headers={"Accept": JSON}).json()
    assert doc["files"][0]["yanked"] == "broken build"
    assert 'data-yanked="broken build"' in get(pypi_graft, "/pypi/simple/yanky/").text


def test_stale_page_is_served_when_upstream_is_down(
    tmp_path: Path, pypi_upstream: SimpleIndex
) -> None:
    upstream = (
        '[{"ecosystem": "pypi", "name": "local", "ttl_seconds": 0, "url": "'
        + pypi_upstream.index_url
        + '"}]'
    )
    srv = GraftServer(tmp_path / "stale", upstream=upstream).start()
    try:
        fresh = get(srv, "/pypi/simple/demo-pkg/", headers={"Accept": JSON})
        assert fresh.status_code == 200
        pypi_upstream.down = True
        try:
            stale = get(srv, "/pypi/simple/demo-pkg/", headers={"Accept": JSON})
            assert stale.status_code == 200 and stale.json() == fresh.json()
            assert "upstream unreachable" in stale.headers["warning"]
            missing = get(srv, "/pypi/simple/never-seen/")
            assert missing.status_code == 502 and "nothing is cached" in missing.text
        finally:
            pypi_upstream.down = False
        assert "serving the last good copy" in srv.log()
    finally:
        srv.stop()


def test_downloads_are_recorded_as_usage(pypi_graft: GraftServer) -> None:
    get(pypi_graft, "/pypi/files/httpish/httpish-2.32.0-py3-none-any.whl")
    get(pypi_graft, "/pypi/files/httpish/httpish-2.32.0-py3-none-any.whl")
    rows = library(pypi_graft)
    assert ("httpish", "2.32.0", "upstream", 2) in rows


def test_auth_is_required(pypi_graft: GraftServer) -> None:
    r = httpx.get(f"{pypi_graft.url}/pypi/simple/demo-pkg/")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = httpx.get(f"{pypi_graft.url}/pypi/simple/demo-pkg/", auth=("x", "graft_wrong"))
    assert r.status_code == 401 and "invalid" in r.text


# -- publishing -------------------------------------------------------------------------------
def test_publish_patched_build_overlays_upstream(pypi_graft: GraftServer, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "httpish", "2.31.0+graft.1")
    r = upload(
        pypi_graft,
        wheel,
        graft_fixes=["CVE-2024-0001", "GHSA-abcd-efgh-ijkl"],
        sha256_digest=sha256_file(wheel),
    )
    assert r.status_code == 200, r.text
    assert "patched build of httpish 2.31.0+graft.1" in r.text
    doc = get(pypi_graft, "/pypi/simple/httpish/", headers={"Accept": JSON}).json()
    assert doc["versions"] == ["2.31.0", "2.31.0+graft.1", "2.32.0"]
    mine = next(f for f in doc["files"] if f["filename"] == wheel.name)
    assert mine["hashes"]["sha256"] == sha256_file(wheel)
    assert mine["core-metadata"]["sha256"] == hashlib.sha256(wheel_metadata(wheel)).hexdigest()
    got = get(pypi_graft, f"/pypi/files/httpish/{wheel.name}")
    assert got.content == wheel.read_bytes()
    assert get(pypi_graft, f"/pypi/files/httpish/{wheel.name}.metadata").content == wheel_metadata(
        wheel
    )
    assert ("httpish", "2.31.0+graft.1", "patched", 1) in library(pypi_graft)
    with sqlite3.connect(pypi_graft.data_dir / "graft.db") as db:
        (fixes,) = db.execute(
            "SELECT fixes FROM catalog_artifacts WHERE filename = ?", (wheel.name,)
        ).fetchone()
    assert "CVE-2024-0001" in fixes


def test_patched_builds_are_per_organization(pypi_graft: GraftServer) -> None:
    pypi_graft.cli("org", "create", "other")
    pypi_graft.cli("account", "create", "bob", "--org", "other")
    import json

    other = json.loads(
        pypi_graft.cli(
            "token", "create", "--org", "other", "--account", "bob", "-s", "read", "--json"
        ).stdout
    )["token"]
    doc = httpx.get(
        f"{pypi_graft.url}/pypi/simple/httpish/", headers={"Accept": JSON}, auth=("x", other)
    ).json()
    assert "+graft" not in " ".join(doc["versions"])


@pytest.mark.parametrize(
    ("name", "version", "kwargs", "status", "needle"),
    [
        ("httpish", "2.31.0+other.1", {}, 422, "not a patched-build marker"),
        ("httpish", "9.9.9+graft.1", {}, 422, "which no upstream index has"),
        ("httpish", "2.31.0", {}, 409, "exists upstream"),
        (
            "httpish",
            "2.31.0+graft.2",
            {"metadata_version": "2.31.0+graft.3"},
            422,
            "does not match",
        ),
        ("httpish", "2.31.0+graft.2", {"metadata_name": "other"}, 422, "does not match"),
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(
    pypi_graft: GraftServer,
    tmp_path: Path,
    name: str,
    version: str,
    kwargs: dict[str, str],
    status: int,
    needle: str,
) -> None:
    wheel = make_wheel(tmp_path, name, version, **kwargs)  # type: ignore[arg-type]
    before = _catalog_count(pypi_graft)
    r = upload(pypi_graft, wheel)
    assert r.status_code == status, r.text
    assert needle in r.text
    assert _catalog_count(pypi_graft) == before


def test_upload_edge_cases(pypi_graft: GraftServer, tmp_path: Path) -> None:
    before = _catalog_count(pypi_graft)
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    assert upload(pypi_graft, junk).status_code == 422
    fake = tmp_path / "fake-1.0-py3-none-any.whl"
    fake.write_bytes(b"not a zip")
    r = upload(pypi_graft, fake)
    assert r.status_code == 422 and "not a readable wheel" in r.text
    wheel = make_wheel(tmp_path, "httpish", "2.31.0+graft.5")
    r = upload(pypi_graft, wheel, sha256_digest="0" * 64)
    assert r.status_code == 422 and "damaged" in r.text
    with wheel.open("rb") as fh:  # a path trick in the file name
        r = httpx.post(
            f"{pypi_graft.url}/pypi/legacy/",
            files={"content": ("../../evil-1.0-py3-none-any.whl", fh)},
            auth=("__token__", pypi_graft.token),
        )
    assert r.status_code == 422
    reader = httpx.post(
        f"{pypi_graft.url}/api/orgs/demo/tokens",
        json={"account": "admin", "scopes": ["read"]},
        auth=("x", pypi_graft.token),
    ).json()["token"]
    assert upload(pypi_graft, wheel, token=reader).status_code == 403
    assert _catalog_count(pypi_graft) == before


def test_republishing_a_file_is_refused(pypi_graft: GraftServer, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0+graft.1")
    assert upload(pypi_graft, wheel).status_code == 200
    r = upload(pypi_graft, wheel)
    assert r.status_code == 409 and "already exists" in r.text


def test_private_packages_never_come_from_upstream(
    pypi_graft: GraftServer, pypi_upstream: SimpleIndex, tmp_path: Path
) -> None:
    # A brand-new name: private by default.
    internal = make_wheel(tmp_path, "acme-internal", "0.1")
    assert upload(pypi_graft, internal).status_code == 200
    doc = get(pypi_graft, "/pypi/simple/acme-internal/", headers={"Accept": JSON}).json()
    assert doc["versions"] == ["0.1"]
    # Someone later publishes the same name upstream (dependency confusion): never offered.
    make_wheel(pypi_upstream.root, "acme-internal", "99.0")
    before = count(pypi_upstream, "/simple/acme-internal/")
    doc = get(pypi_graft, "/pypi/simple/acme-internal/", headers={"Accept": JSON}).json()
    assert doc["versions"] == ["0.1"]
    assert (
        get(pypi_graft, "/pypi/files/acme-internal/acme_internal-99.0-py3-none-any.whl").status_code
        == 404
    )
    assert count(pypi_upstream, "/simple/acme-internal/") == before
    # Claiming a name that exists upstream needs the explicit flag.
    claimed = make_wheel(tmp_path, "depender", "5.0")
    assert upload(pypi_graft, claimed).status_code == 409
    assert upload(pypi_graft, claimed, graft_private="1").status_code == 200
    doc = get(pypi_graft, "/pypi/simple/depender/", headers={"Accept": JSON}).json()
    assert doc["versions"] == ["5.0"]


def test_sdist_publish(pypi_graft: GraftServer, tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "httpish", "2.32.0+graft.1")
    r = upload(pypi_graft, sdist, graft_fixes="CVE-2024-0002")
    assert r.status_code == 200, r.text
    doc = get(pypi_graft, "/pypi/simple/httpish/", headers={"Accept": JSON}).json()
    assert sdist.name in {f["filename"] for f in doc["files"]}


def test_oversized_upload_is_refused(tmp_path: Path, pypi_upstream: SimpleIndex) -> None:
    srv = GraftServer(tmp_path / "small", max_upload_bytes=4096).start()
    try:
        wheel = make_wheel(tmp_path, "demo-pkg", "1.0+graft.7", files={"x/a.txt": "y" * 20000})
        big = tmp_path / "pad" / wheel.name
        big.parent.mkdir()
        big.write_bytes(wheel.read_bytes() + b"\0" * 10000)
        r = upload(srv, big)
        assert r.status_code == 413 and "too large" in r.text
        assert _catalog_count(srv) == 0
    finally:
        srv.stop()


def _catalog_count(srv: GraftServer) -> int:
    with sqlite3.connect(srv.data_dir / "graft.db") as db:
        return int(db.execute("SELECT count(*) FROM catalog_artifacts").fetchone()[0])
