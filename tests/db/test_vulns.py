"""OSV import, matching and library status, requests and remediation, on both backends."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from graft import ecosystems
from graft.accounts.service import AccountService
from graft.catalog import CatalogService
from graft.db import Database
from graft.db.models import Advisory, AdvisoryAffected
from graft.errors import Conflict, InvalidInput, NotFound
from graft.settings import Settings
from graft.usage import Served, UsageEvent, UsageRecorder
from graft.vulns import LibraryQuery, VulnService, collect
from graft.vulns import importer as importer_module
from tests.fixtures.osv import CRITICAL, HIGH, MEDIUM_V4, record, write_zip

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
SCHEMES = collect(ecosystems.load(), Settings())


def records() -> list[dict[str, object] | bytes]:
    return [
        record(
            "PYSEC-2024-1",
            "PyPI",
            "HTTPish",  # normalized to the library's spelling
            events=[{"introduced": "0"}, {"fixed": "2.32.0"}],
            aliases=["CVE-2024-1111"],
            vector=CRITICAL,
        ),
        record(
            "GHSA-aaaa-bbbb-cccc",
            "PyPI",
            "httpish",
            events=[{"introduced": "2.0"}, {"last_affected": "2.31.0"}],
            aliases=["CVE-2024-2222"],
            vector=HIGH,
        ),
        record(
            "GHSA-npm1-0000-0000",
            "npm",
            "left-pad",
            events=[{"introduced": "1.0.0"}, {"fixed": "1.1.1"}],
            range_type="SEMVER",
            aliases=["CVE-2024-3333"],
            vector=MEDIUM_V4,
        ),
        record(
            "DSA-5555-1",
            "Debian:12",
            "curl",
            versions=["7.88.1-10+deb12u5"],
            aliases=["CVE-2024-4444"],
            database_specific={"severity": "high"},
        ),
        record(
            "PYSEC-2020-9",
            "PyPI",
            "httpish",
            events=[{"introduced": "0"}],
            withdrawn="2024-02-01T00:00:00Z",
        ),
        record("RUSTSEC-2024-1", "crates.io", "serde", events=[{"introduced": "0"}]),
        b"{not json",
        json.dumps({"id": "BAD-1", "modified": "yesterday"}).encode(),
    ]


@pytest.fixture
async def world(db: Database) -> dict[str, int]:
    svc = AccountService(db, default_grace=dt.timedelta(hours=1))
    a = await svc.create_org("acme")
    b = await svc.create_org("beta")
    ci = await svc.create_account("acme", "ci", kind="service")
    bob = await svc.create_account("beta", "bob")
    rec = UsageRecorder(db, flush_seconds=60)
    for org, account in ((a.id, ci.id), (b.id, bob.id)):
        for eco, pkg, ver, dist in (
            ("pypi", "httpish", "2.31.0", ""),
            ("pypi", "httpish", "2.32.0", ""),
            ("pypi", "httpish", "1.0", ""),
            ("npm", "left-pad", "1.1.0", ""),
            ("npm", "left-pad", "1.1.1", ""),
            ("debian", "curl", "7.88.1-10+deb12u5", "bookworm"),
            ("debian", "curl", "7.88.1-10+deb12u5", "trixie"),
        ):
            rec.record(UsageEvent(org, account, eco, pkg, ver, Served.UPSTREAM, dist, T0))
    await rec.flush()
    return {"acme": a.id, "beta": b.id, "ci": ci.id, "bob": bob.id}


def service(db: Database) -> tuple[VulnService, CatalogService]:
    catalog = CatalogService(db)
    vulns = VulnService(db, catalog)
    vulns.register(SCHEMES)
    return vulns, catalog


async def statuses(vulns: VulnService, org_id: int) -> dict[tuple[str, str, str], tuple]:  # type: ignore[type-arg]
    page = await vulns.list_library(org_id, LibraryQuery(limit=500))
    return {
        (e.package, e.version, e.distribution): (e.status, e.critical, e.high, e.severity)
        for e in page.items
    }


async def test_import_match_and_status(db: Database, world: dict[str, int], tmp_path: Path) -> None:
    vulns, _ = service(db)
    summary = await vulns.import_osv(str(write_zip(tmp_path / "all.zip", records())))
    assert summary.records == 6 and summary.imported == 5 and summary.skipped == 1
    assert summary.withdrawn == 1
    assert summary.unknown_ecosystems == {"crates.io": 1}
    assert len(summary.malformed) == 2
    assert any("broken-6.json: not JSON" in m for m in summary.malformed)
    assert any("modified" in m for m in summary.malformed)

    got = await statuses(vulns, world["acme"])
    assert got[("httpish", "2.31.0", "")] == ("no patch available", 1, 1, "critical")
    assert got[("httpish", "1.0", "")] == ("no patch available", 1, 0, "critical")
    assert got[("httpish", "2.32.0", "")] == ("not affected", 0, 0, "none")
    assert got[("left-pad", "1.1.0", "")] == ("no patch available", 0, 0, "medium")
    assert got[("left-pad", "1.1.1", "")] == ("not affected", 0, 0, "none")
    # Debian:12 is bookworm: the same version in trixie is not matched
    assert got[("curl", "7.88.1-10+deb12u5", "bookworm")] == ("no patch available", 0, 1, "high")
    assert got[("curl", "7.88.1-10+deb12u5", "trixie")][0] == "not affected"

    async with db.session() as s:
        adv = (await s.scalars(select(Advisory).where(Advisory.osv_id == "PYSEC-2024-1"))).one()
    assert (adv.severity_score, adv.severity_level) == (9.8, "critical")


async def test_reimport_is_incremental_by_modified(
    db: Database, world: dict[str, int], tmp_path: Path
) -> None:
    vulns, _ = service(db)
    path = write_zip(tmp_path / "all.zip", records())
    await vulns.import_osv(str(path))
    again = await vulns.import_osv(str(path))
    assert (again.imported, again.unchanged, again.entries_to_refresh) == (0, 5, 0)
    newer = record(
        "PYSEC-2024-1",
        "PyPI",
        "httpish",
        events=[{"introduced": "0"}, {"fixed": "1.5"}],  # now only 1.0 is affected
        vector=CRITICAL,
        modified="2024-06-01T00:00:00Z",
    )
    directory = tmp_path / "dir"
    (directory / "PyPI").mkdir(parents=True)
    (directory / "PyPI" / "PYSEC-2024-1.json").write_text(json.dumps(newer))
    changed = await vulns.import_osv(str(directory))
    assert (changed.imported, changed.unchanged) == (1, 0)
    assert changed.entries_to_refresh == 6  # httpish entries of both organizations
    got = await statuses(vulns, world["acme"])
    assert got[("httpish", "2.31.0", "")] == ("no patch available", 0, 1, "high")
    assert got[("httpish", "1.0", "")][0] == "no patch available"
    async with db.session() as s:
        n = (await s.execute(select(func.count()).select_from(AdvisoryAffected))).scalar_one()
    assert n == 5  # the changed record's affected rows were replaced, not added


async def test_an_interrupted_import_leaves_the_previous_state(
    db: Database, world: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vulns, _ = service(db)
    await vulns.import_osv(str(write_zip(tmp_path / "one.zip", records()[:1])))
    before = await statuses(vulns, world["acme"])
    monkeypatch.setattr(importer_module, "BATCH", 2)
    calls = 0
    real_write = importer_module._write

    async def failing(*args: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the import
        return await real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(importer_module, "_write", failing)
    with pytest.raises(KeyboardInterrupt):
        await vulns.import_osv(str(write_zip(tmp_path / "all.zip", records())))
    async with db.session() as s:
        ids = sorted(await s.scalars(select(Advisory.osv_id)))
    assert ids == ["PYSEC-2024-1"]
    assert await statuses(vulns, world["acme"]) == before


async def test_patched_builds_change_the_status(
    db: Database, world: dict[str, int], tmp_path: Path
) -> None:
    vulns, catalog = service(db)
    await vulns.import_osv(str(write_zip(tmp_path / "all.zip", records())))
    await vulns.refresh()
    request = await vulns.submit_request(
        world["acme"], world["ci"], ecosystem="pypi", package="HTTPish", version="2.31.0"
    )
    assert request.package == "httpish" and request.status == "open"
    other = await vulns.submit_request(
        world["beta"], world["bob"], ecosystem="pypi", package="httpish"
    )
    await catalog.add(
        org_id=world["acme"],
        ecosystem="pypi",
        package="httpish",
        version="2.31.0+graft.1",
        upstream_version="2.31.0",
        kind="patched",
        filename="httpish-2.31.0+graft.1-py3-none-any.whl",
        digest="sha256:" + "0" * 64,
        size=1,
        fixes=["CVE-2024-1111"],  # fixes the critical one by its alias, not the high one
        attrs={},
        created_by=world["ci"],
    )
    got = await statuses(vulns, world["acme"])
    assert got[("httpish", "2.31.0", "")] == ("patched available", 1, 1, "critical")
    assert (await statuses(vulns, world["beta"]))[("httpish", "2.31.0", "")][0] == (
        "no patch available"
    )  # another organization's build does not count
    page = await vulns.list_library(world["acme"], LibraryQuery(status="patched available"))
    assert [e.install_command for e in page.items] == ['pip install "httpish==2.31.0+graft.1"']

    detail = await vulns.library_entry(world["acme"], page.items[0].id)
    assert {a.id for a in detail.advisories_before} == {"PYSEC-2024-1", "GHSA-aaaa-bbbb-cccc"}
    assert [a.id for a in detail.advisories_after or []] == ["GHSA-aaaa-bbbb-cccc"]
    assert detail.patched_build is not None and detail.patched_build.fixes == ["CVE-2024-1111"]
    assert [a.account for a in detail.accounts] == ["ci"]
    with pytest.raises(NotFound):
        await vulns.library_entry(world["beta"], page.items[0].id)

    # The organization switches to the patched build: only the high advisory stays open.
    rec = UsageRecorder(db, flush_seconds=60)
    rec.record(
        UsageEvent(world["acme"], world["ci"], "pypi", "httpish", "2.31.0+graft.1", Served.PATCHED)
    )
    await rec.flush()
    got = await statuses(vulns, world["acme"])
    assert got[("httpish", "2.31.0+graft.1", "")] == ("patched in use", 0, 1, "high")

    # The matching request was published automatically; beta's was left alone.
    (mine,) = await vulns.list_requests(world["acme"])
    assert (mine.id, mine.status, mine.published_version) == (
        request.id,
        "published",
        "2.31.0+graft.1",
    )
    assert [r.status for r in await vulns.list_requests(world["beta"])] == ["open"]
    with pytest.raises(NotFound):
        await vulns.set_request_status(world["acme"], other.id, "declined")
    assert (await vulns.set_request_status(world["beta"], other.id, "in progress")).status == (
        "in progress"
    )
    with pytest.raises(Conflict):
        await vulns.set_request_status(world["acme"], request.id, "open")

    result = await vulns.remediate(
        world["acme"], "pypi", [("HTTPish", "2.31.0"), ("httpish", "1.0"), ("httpish", "2.32.0")]
    )
    first, second, third = result.packages
    assert (first.result, first.patched_version, first.unfixed) == (
        "patched",
        "2.31.0+graft.1",
        ["GHSA-aaaa-bbbb-cccc"],
    )
    assert (second.result, second.advisories) == ("no patch", ["PYSEC-2024-1"])
    assert third.result == "not affected"

    feed = await vulns.osv_records(world["acme"])
    assert [r["aliases"] for r in feed] == [["CVE-2024-1111"]]
    assert feed[0]["affected"][0]["ranges"][0]["events"] == [
        {"introduced": "2.31.0"},
        {"fixed": "2.31.0+graft.1"},
    ]
    assert await vulns.osv_records(world["beta"]) == []


async def test_library_filters_sorting_and_cursor(
    db: Database, world: dict[str, int], tmp_path: Path
) -> None:
    vulns, _ = service(db)
    await vulns.import_osv(str(write_zip(tmp_path / "all.zip", records())))
    org = world["acme"]
    seen = []
    cursor = None
    while True:
        page = await vulns.list_library(org, LibraryQuery(sort="package", limit=3, cursor=cursor))
        assert page.total == 7
        seen += [(e.package, e.id) for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 7 and seen == sorted(seen)
    crit = await vulns.list_library(org, LibraryQuery(severity="high"))
    assert {(e.package, e.version) for e in crit.items} == {
        ("httpish", "2.31.0"),
        ("httpish", "1.0"),
        ("curl", "7.88.1-10+deb12u5"),
    }
    npm = await vulns.list_library(org, LibraryQuery(ecosystem="npm", text="LEFT"))
    assert {e.version for e in npm.items} == {"1.1.0", "1.1.1"}
    assert (await vulns.list_library(org, LibraryQuery(text="%"))).total == 0  # no wildcard
    by_severity = await vulns.list_library(org, LibraryQuery(sort="-severity", limit=2))
    assert [e.severity for e in by_severity.items] == ["critical", "critical"]


async def test_import_from_a_url(db: Database, world: dict[str, int], tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    write_zip(tmp_path / "all.zip", records())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        vulns, _ = service(db)
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        summary = await vulns.import_osv(f"{base}/all.zip")
        assert (summary.imported, summary.unknown_ecosystems) == (5, {"crates.io": 1})
        with pytest.raises(InvalidInput, match="HTTP 404"):
            await vulns.import_osv(f"{base}/missing.zip")
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_os_packages_are_matched_by_their_source_package(
    db: Database, world: dict[str, int], tmp_path: Path
) -> None:
    """Debian and Alpine advisories name the source package; clients download binaries."""
    from graft.web.insights import oldest_open

    org, ci = world["acme"], world["ci"]
    rec = UsageRecorder(db, flush_seconds=60)
    for eco, pkg, ver, dist, source, source_version in (
        ("debian", "libcurlish4", "7.88.1-10+deb12u5", "bookworm", "curlish", None),
        # a binNMU: binary version +b1, advisories list the source version
        ("debian", "libbinish1", "2.0-1+b1", "bookworm", "binish", "2.0-1"),
        ("debian", "binish-tools", "2.0-1+b1", "bookworm", "binish", None),  # no source version
        ("alpine", "libcurlish", "8.9.1-r1", "3.20", "curlish", None),
        ("alpine", "curlish", "8.9.1-r1", "3.20", None, None),
    ):
        rec.record(
            UsageEvent(org, ci, eco, pkg, ver, Served.FALLBACK, dist, T0, source, source_version)
        )
    await rec.flush()
    vulns, _ = service(db)
    before = await statuses(vulns, org)  # computed before any advisory: an import marks them
    assert before[("libcurlish4", "7.88.1-10+deb12u5", "bookworm")][0] == "not affected"
    osv = [
        record(
            "DSA-9001-1",
            "Debian:12",
            "curlish",
            versions=["7.88.1-10+deb12u5"],
            database_specific={"severity": "high"},
        ),
        record("DSA-9002-1", "Debian:12", "binish", versions=["2.0-1"], vector=CRITICAL),
        # an advisory naming the binary package does not apply to a binary with another source
        record("DSA-9003-1", "Debian:12", "libcurlish4", versions=["7.88.1-10+deb12u5"]),
        record(
            "ALPINE-CVE-2024-9004",
            "Alpine:v3.20",
            "curlish",
            events=[{"introduced": "0"}, {"fixed": "8.9.1-r2"}],
            vector=HIGH,
        ),
    ]
    await vulns.import_osv(str(write_zip(tmp_path / "os.zip", osv)))
    got = await statuses(vulns, org)
    assert got[("libcurlish4", "7.88.1-10+deb12u5", "bookworm")] == (
        "no patch available", 0, 1, "high",
    )  # fmt: skip
    assert got[("libbinish1", "2.0-1+b1", "bookworm")] == ("no patch available", 1, 0, "critical")
    # without the source version the binNMU's own version is not in the affected list
    assert got[("binish-tools", "2.0-1+b1", "bookworm")][0] == "not affected"
    assert got[("libcurlish", "8.9.1-r1", "3.20")] == ("no patch available", 0, 1, "high")
    assert got[("curlish", "8.9.1-r1", "3.20")] == ("no patch available", 0, 1, "high")

    page = await vulns.list_library(org, LibraryQuery(text="libcurlish4"))
    assert [(e.package, e.source) for e in page.items] == [("libcurlish4", "curlish")]
    detail = await vulns.library_entry(org, page.items[0].id)
    assert [a.id for a in detail.advisories_before] == ["DSA-9001-1"]
    levels = {level for level, _days, _id in await oldest_open(db, SCHEMES, org)}
    assert {"critical", "high"} <= levels


async def test_an_entry_becomes_due_when_its_source_is_learned(
    db: Database, world: dict[str, int], tmp_path: Path
) -> None:
    """Entries recorded before sources were (an upgrade) are matched again once a download
    brings the source."""
    org, ci = world["acme"], world["ci"]
    vulns, _ = service(db)
    osv = [record("DSA-9001-1", "Debian:12", "curlish", versions=["7.88.1-10+deb12u5"])]
    await vulns.import_osv(str(write_zip(tmp_path / "os.zip", osv)))
    entry = ("libcurlish4", "7.88.1-10+deb12u5", "bookworm")
    rec = UsageRecorder(db, flush_seconds=60)
    rec.record(UsageEvent(org, ci, "debian", *entry[:2], Served.FALLBACK, entry[2], T0))
    await rec.flush()
    assert (await statuses(vulns, org))[entry][0] == "not affected"
    rec.record(UsageEvent(org, ci, "debian", *entry[:2], Served.FALLBACK, entry[2], T0, "curlish"))
    await rec.flush()
    assert (await statuses(vulns, org))[entry][0] == "no patch available"
