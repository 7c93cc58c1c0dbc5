"""Discovery and vulnerability status end to end: downloads become library entries,
`graft vulns import` brings OSV advisories, the API and CLI show the status; npm audit (the
real npm) and the PyPI JSON API answer from Graft's advisories; requests, remediation, the
OSV feed; and organization B never sees organization A's data through any of it."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.dists import make_wheel
from tests.fixtures.npm_clients import client, js_env, run
from tests.fixtures.npm_packages import make_package
from tests.fixtures.npm_registry import NpmRegistry
from tests.fixtures.osv import CRITICAL, HIGH, record, write_zip
from tests.fixtures.simple_index import SimpleIndex
from tests.integration.graftserver import GraftServer

ADVISORIES = [
    record(
        "PYSEC-2024-77",
        "PyPI",
        "httpish",
        events=[{"introduced": "0"}, {"fixed": "2.32.0"}],
        aliases=["CVE-2024-7777"],
        vector=CRITICAL,
        references=[{"type": "ADVISORY", "url": "https://example.invalid/PYSEC-2024-77"}],
    ),
    record(
        "GHSA-left-pad0-0001",
        "npm",
        "left-pad",
        events=[{"introduced": "0"}, {"fixed": "1.1.1"}],
        range_type="SEMVER",
        aliases=["CVE-2024-0007"],
        vector=HIGH,
    ),
    record("RUSTSEC-2024-9", "crates.io", "serde", events=[{"introduced": "0"}]),
]


@pytest.fixture(scope="module")
def graft(
    tmp_path_factory: pytest.TempPathFactory, pypi_upstream: SimpleIndex, npm_upstream: NpmRegistry
) -> Iterator[GraftServer]:
    upstream = [
        {"ecosystem": "pypi", "name": "local", "url": pypi_upstream.index_url},
        {"ecosystem": "npm", "name": "local-npm", "url": npm_upstream.url},
    ]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-vulns") / "data",
        upstream=json.dumps(upstream),
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
    ).start()
    yield srv
    srv.stop()


def api(srv: GraftServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{srv.url}/api", auth=("graft", token), timeout=30)


@pytest.fixture(scope="module")
def beta(graft: GraftServer) -> str:
    """An admin token of a second organization."""
    with api(graft, graft.token) as c:
        assert c.post("/orgs", json={"name": "beta"}).status_code == 201
        assert c.post("/orgs/beta/accounts", json={"name": "bob"}).status_code == 201
        r = c.post("/orgs/beta/tokens", json={"account": "bob", "scopes": ["admin"]})
        assert r.status_code == 201
        return str(r.json()["token"])


@pytest.fixture(scope="module")
def reader(graft: GraftServer) -> str:
    with api(graft, graft.token) as c:
        r = c.post("/orgs/demo/tokens", json={"account": "admin", "scopes": ["read"]})
        return str(r.json()["token"])


def download_wheel(srv: GraftServer, token: str, version: str) -> None:
    page = httpx.get(
        f"{srv.url}/pypi/simple/httpish/",
        auth=("x", token),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    (f,) = [f for f in page["files"] if f["filename"].startswith(f"httpish-{version}-")]
    r = httpx.get(f"{srv.url}/pypi/files/httpish/{f['filename']}", auth=("x", token))
    assert r.status_code == 200


def wait_library(c: httpx.Client, count: int, **params: Any) -> dict[str, Any]:
    """Usage is written in the background every 0.2 s: wait until it is."""
    deadline = time.monotonic() + 15
    while True:
        page: dict[str, Any] = c.get("/library", params=params).json()
        if page["total"] >= count or time.monotonic() > deadline:
            return page
        time.sleep(0.1)


@pytest.fixture(scope="module")
def imported(graft: GraftServer, beta: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    download_wheel(graft, graft.token, "2.31.0")
    download_wheel(graft, graft.token, "2.32.0")
    download_wheel(graft, beta, "2.31.0")
    with api(graft, graft.token) as c:
        wait_library(c, 2)
    with api(graft, beta) as c:
        wait_library(c, 1)
    path = write_zip(tmp_path_factory.mktemp("osv") / "all.zip", ADVISORIES)
    return graft.cli("vulns", "import", str(path)).stdout


def by_version(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["version"]: e for e in page["items"]}


def test_import_summary_and_library_status(graft: GraftServer, imported: str) -> None:
    assert "3 records read: 2 imported" in imported
    assert "crates.io (1)" in imported
    with api(graft, graft.token) as c:
        page = c.get("/library", params={"ecosystem": "pypi"}).json()
    got = by_version(page)
    assert got["2.31.0"]["status"] == "no patch available"
    assert (got["2.31.0"]["critical"], got["2.31.0"]["severity"]) == (1, "critical")
    assert got["2.32.0"]["status"] == "not affected"


def test_cli_library_list_table_and_json(graft: GraftServer, imported: str) -> None:
    listed = graft.cli("library", "list", "--url", graft.url, "--token", graft.token).stdout
    assert "httpish" in listed and "no patch available" in listed
    as_json = graft.cli(
        "library", "list", "--json", "--status", "not affected", "--url", graft.url,
        "--token", graft.token,
    ).stdout  # fmt: skip
    items = json.loads(as_json)["items"]
    assert [(e["package"], e["version"]) for e in items] == [("httpish", "2.32.0")]


def test_bad_library_queries_are_4xx(graft: GraftServer, imported: str) -> None:
    with api(graft, graft.token) as c:
        assert c.get("/library", params={"status": "bogus"}).status_code == 422
        assert c.get("/library", params={"limit": 0}).status_code == 422
        r = c.get("/library", params={"cursor": "garbage"})
        assert r.status_code == 422 and "cursor" in r.json()["message"]
        assert c.get("/library/999999").status_code == 404


def test_patched_build_remediation_json_api_and_feed(
    graft: GraftServer, beta: str, imported: str, tmp_path: Path
) -> None:
    with api(graft, graft.token) as c:
        req = c.post(
            "/requests",
            json={"ecosystem": "pypi", "package": "HTTPish", "version": "2.31.0", "reason": "CVE"},
        )
        assert req.status_code == 201, req.text
        request_id = req.json()["id"]
        assert c.patch(f"/requests/{request_id}", json={"status": "in progress"}).status_code == 200

    wheel = make_wheel(tmp_path, "httpish", "2.31.0+graft.1")
    graft.cli(
        "publish", "pypi", str(wheel), "--url", graft.url, "--token", graft.token,
        "--fixes", "CVE-2024-7777",
    )  # fmt: skip
    with api(graft, graft.token) as c:
        entry = by_version(c.get("/library", params={"ecosystem": "pypi"}).json())["2.31.0"]
        assert entry["status"] == "patched available"
        assert entry["install_command"] == 'pip install "httpish==2.31.0+graft.1"'
        detail = c.get(f"/library/{entry['id']}").json()
        assert [a["id"] for a in detail["advisories_before"]] == ["PYSEC-2024-77"]
        assert detail["advisories_after"] == []
        assert detail["accounts"][0]["account"] == "admin"
        (published,) = c.get("/requests").json()
        assert (published["status"], published["published_version"]) == (
            "published",
            "2.31.0+graft.1",
        )

        fix = c.post(
            "/remediate/pypi",
            json={
                "packages": [
                    {"name": "httpish", "version": "2.31.0"},
                    {"name": "x", "version": "1"},
                ]
            },
        ).json()["packages"]
        assert (fix[0]["result"], fix[0]["patched_version"], fix[0]["fixes"]) == (
            "patched",
            "2.31.0+graft.1",
            ["CVE-2024-7777"],
        )
        assert fix[1]["result"] == "not affected"
        assert c.post("/remediate/cobol", json={"packages": []}).status_code == 422
        assert c.post("/remediate/pypi", json={"packages": [{"name": "x"}]}).status_code == 422

        zipped = c.get("/osv/all.zip")
        assert zipped.status_code == 200
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as zf:
            (name,) = zf.namelist()
            rec = json.loads(zf.read(name))
        assert rec["aliases"] == ["CVE-2024-7777"]
        assert rec["affected"][0]["ranges"][0]["events"] == [
            {"introduced": "2.31.0"},
            {"fixed": "2.31.0+graft.1"},
        ]
        assert c.get(f"/osv/{rec['id']}.json").json() == rec

    # the PyPI JSON API: the upstream version is vulnerable, the patched build is not
    def pypi_json(version: str, token: str = graft.token) -> httpx.Response:
        return httpx.get(f"{graft.url}/pypi/pypi/httpish/{version}/json", auth=("x", token))

    doc = pypi_json("2.31.0").json()
    assert doc["info"]["name"] == "httpish" and doc["info"]["version"] == "2.31.0"
    assert doc["urls"][0]["digests"]["sha256"]
    assert [v["id"] for v in doc["vulnerabilities"]] == ["PYSEC-2024-77"]
    assert doc["vulnerabilities"][0]["aliases"] == ["CVE-2024-7777"]
    assert "2.32.0" in doc["vulnerabilities"][0]["fixed_in"]
    assert pypi_json("2.31.0+graft.1").json()["vulnerabilities"] == []
    assert pypi_json("9.9").status_code == 404
    # beta has no patched build: its own view of the same wheel is still vulnerable
    assert pypi_json("2.31.0+graft.1", beta).status_code == 404

    with api(graft, beta) as b:
        other = by_version(b.get("/library", params={"ecosystem": "pypi"}).json())
        assert other["2.31.0"]["status"] == "no patch available"
        assert b.get(f"/library/{entry['id']}").status_code == 404
        assert b.get("/requests").json() == []
        assert b.patch(f"/requests/{request_id}", json={"status": "declined"}).status_code == 404
        assert b.get(f"/osv/{rec['id']}.json").status_code == 404
        with zipfile.ZipFile(io.BytesIO(b.get("/osv/all.zip").content)) as zf:
            assert zf.namelist() == []
        fix = b.post(
            "/remediate/pypi", json={"packages": [{"name": "httpish", "version": "2.31.0"}]}
        ).json()["packages"]
        assert fix[0]["result"] == "no patch"


def test_isolation_of_the_library(graft: GraftServer, beta: str, imported: str) -> None:
    with api(graft, graft.token) as a, api(graft, beta) as b:
        mine = {e["id"] for e in a.get("/library", params={"limit": 500}).json()["items"]}
        theirs = {e["id"] for e in b.get("/library", params={"limit": 500}).json()["items"]}
        assert mine and theirs and not mine & theirs
        for entry_id in mine:
            assert b.get(f"/library/{entry_id}").status_code == 404
        assert b.get("/library", params={"q": "httpish"}).json()["total"] == 1


def test_request_rules(graft: GraftServer, reader: str, beta: str, imported: str) -> None:
    submitted = graft.cli(
        "request", "submit", "npm", "left-pad", "1.0.0", "--reason", "CVE-2024-0007",
        "--url", graft.url, "--token", reader,
    ).stdout  # fmt: skip
    assert "opened for npm left-pad" in submitted
    listed = graft.cli("request", "list", "--json", "--url", graft.url, "--token", reader).stdout
    mine = [r for r in json.loads(listed) if r["package"] == "left-pad"]
    assert mine[0]["status"] == "open" and mine[0]["created_by"] == "admin"
    with api(graft, reader) as c:
        # a read token may ask, only an admin may move a request
        assert c.patch(f"/requests/{mine[0]['id']}", json={"status": "declined"}).status_code == 403
        bad = c.post("/requests", json={"ecosystem": "cobol", "package": "x"})
        assert bad.status_code == 422 and "unknown ecosystem" in bad.json()["message"]
        assert c.post("/requests", json={"ecosystem": "npm", "package": ""}).status_code == 422
        assert (
            c.post(
                "/requests", json={"ecosystem": "npm", "package": "x", "version": "nope"}
            ).status_code
            == 422
        )
    with api(graft, graft.token) as c:
        moved = c.patch(f"/requests/{mine[0]['id']}", json={"status": "declined"})
        assert moved.json()["status"] == "declined"
        assert (
            c.patch(f"/requests/{mine[0]['id']}", json={"status": "published"}).status_code == 409
        )
        assert c.patch(f"/requests/{mine[0]['id']}", json={"status": "bogus"}).status_code == 422
    with api(graft, beta) as b:
        assert all(r["package"] != "left-pad" for r in b.get("/requests").json())


def test_npm_audit_answers_from_graft_advisories(
    graft: GraftServer, beta: str, imported: str, tmp_path: Path
) -> None:
    def project(name: str, token: str, version: str) -> tuple[Path, dict[str, str]]:
        proj = tmp_path / name
        proj.mkdir()
        manifest = {"name": name, "version": "1.0.0", "private": True,
                    "dependencies": {"left-pad": version}}  # fmt: skip
        (proj / "package.json").write_text(json.dumps(manifest))
        npmrc = graft.cli("configure", "npm", "--url", graft.url, "--token", token).stdout
        (proj / ".npmrc").write_text(npmrc)
        env = js_env(tmp_path / f"home-{name}")
        run([*client("npm"), "install", "--no-audit"], env, proj)
        return proj, env

    proj, env = project("app", graft.token, "1.1.0")
    audit = run([*client("npm"), "audit", "--json"], env, proj, ok=False)
    report = json.loads(audit.stdout)
    assert audit.returncode != 0
    vuln = report["vulnerabilities"]["left-pad"]
    assert vuln["severity"] == "high"
    assert vuln["via"][0]["title"] == "left-pad: a test advisory"
    assert vuln["via"][0]["range"] == "<1.1.1"

    # a patched build of 1.1.0 declaring the advisory fixed: npm audit finds nothing
    tgz = make_package(tmp_path / "patched", "left-pad", "1.1.0-graft.1")
    graft.cli(
        "publish", "npm", str(tgz), "--url", graft.url, "--token", graft.token,
        "--fixes", "CVE-2024-0007", "--tag", "patched",
    )  # fmt: skip
    fixed, fixed_env = project("fixed", graft.token, "1.1.0-graft.1")
    clean = run([*client("npm"), "audit"], fixed_env, fixed)
    assert "found 0 vulnerabilities" in clean.stdout

    # beta has no such build: its npm audit of 1.1.0 still reports the advisory
    other, other_env = project("beta-app", beta, "1.1.0")
    assert run([*client("npm"), "audit"], other_env, other, ok=False).returncode != 0

    # the quick audit (older npm) answers in its shape too
    r = httpx.post(
        f"{graft.url}/npm/-/npm/v1/security/audits/quick",
        auth=("x", graft.token),
        json={"name": "app", "dependencies": {"left-pad": {"version": "1.0.0"}}},
    )
    quick = r.json()
    assert quick["metadata"]["vulnerabilities"]["high"] == 1
    (adv,) = quick["advisories"].values()
    assert adv["findings"] == [{"version": "1.0.0", "paths": ["left-pad"]}]
