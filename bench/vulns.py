"""Advisory import, matching and the library page at scale (issue 7).

1. Generates N realistic npm OSV records (default 50,000: SEMVER ranges with introduced/fixed
   or last_affected, some explicit version lists, CVE aliases, CVSS v3.1 and v4 vectors, a few
   withdrawn) as a zip in the OSV project's export layout, over a pool of package names.
2. Fills one organization's library with M entries (default 100,000) of those packages and
   others, and publishes patched builds for some of them.
3. Imports the zip (`VulnService.import_osv`) and computes every entry's status
   (`VulnService.refresh`), each in a fresh process so its peak memory is its own:
   records/s, entries/s, peak RSS.
4. Times filtered library pages (`VulnService.list_library`, the function behind
   `GET /api/library`) against the one-second budget: median and worst of several queries.

Runs on SQLite, and on PostgreSQL when one is reachable (`--pg-url`, default the test server
on 127.0.0.1:5432; a throwaway database is created and dropped). Standard library + Graft.

    .venv/bin/python bench/vulns.py                 # 50,000 records, 100,000 entries
    .venv/bin/python bench/vulns.py --records 5000 --entries 10000 --no-pg   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_json

VECTORS = [
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N",
    "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
    "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
    "CVSS:4.0/AV:N/AC:L/AT:P/PR:L/UI:P/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N",
]
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def version(rng: random.Random) -> str:
    return f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 40)}"


def generate(path: Path, records: int, packages: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(records):
            affected = []
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                name = f"pkg-{rng.randrange(packages)}"
                lo = version(rng)
                major = int(lo.split(".")[0])
                entry: dict[str, Any] = {"package": {"ecosystem": "npm", "name": name}}
                if rng.random() < 0.1:
                    entry["versions"] = [version(rng) for _ in range(rng.randint(1, 8))]
                else:
                    events: list[dict[str, str]] = [
                        {"introduced": "0" if rng.random() < 0.4 else lo}
                    ]
                    fixed = f"{major + rng.randint(0, 1)}.{rng.randint(0, 30)}.{rng.randint(0, 40)}"
                    events.append(
                        {"fixed": fixed} if rng.random() < 0.85 else {"last_affected": fixed}
                    )
                    entry["ranges"] = [{"type": "SEMVER", "events": events}]
                    entry["database_specific"] = {"source": "bench"}
                affected.append(entry)
            modified = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
            rec = {
                "schema_version": "1.6.0",
                "id": f"GHSA-bench-{i:06d}",
                "modified": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "published": "2023-06-01T00:00:00Z",
                "aliases": [f"CVE-2024-{10000 + i}"],
                "summary": f"Denial of service in {affected[0]['package']['name']}",
                "details": "A crafted input makes the parser loop. " * rng.randint(1, 10),
                "severity": [
                    {"type": "CVSS_V3" if v.startswith("CVSS:3") else "CVSS_V4", "score": v}
                    for v in [rng.choice(VECTORS)]
                ],
                "affected": affected,
                "references": [{"type": "ADVISORY", "url": f"https://example.invalid/{i}"}],
            }
            if rng.random() < 0.01:
                rec["withdrawn"] = "2024-06-01T00:00:00Z"
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))


async def fill(url: str, entries: int, packages: int, patched: int, seed: int = 11) -> None:
    from sqlalchemy import insert

    from graft.db import Database
    from graft.db.models import Account, CatalogArtifact, LibraryEntry, Organization

    rng = random.Random(seed)
    db = Database(url)
    await db.migrate()
    now = dt.datetime.now(dt.UTC)
    async with db.session() as s:
        org = Organization(name="bench")
        s.add(org)
        await s.flush()
        s.add(Account(org_id=org.id, name="ci", kind="service"))
        rows, seen = [], set()
        while len(rows) < entries:
            # two thirds of the entries are packages with advisories, the rest are not
            pkg = rng.randrange(packages * 3 // 2)
            key = (f"pkg-{pkg}", version(rng))
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                {
                    "org_id": org.id,
                    "ecosystem": "npm",
                    "distribution": "",
                    "package": key[0],
                    "version": key[1],
                    "served": "upstream",
                    "first_seen": now - dt.timedelta(seconds=rng.randrange(86400 * 90)),
                    "last_seen": now - dt.timedelta(seconds=rng.randrange(86400)),
                    "count": rng.randint(1, 5000),
                }
            )
        for i in range(0, len(rows), 5000):
            await s.execute(insert(LibraryEntry), rows[i : i + 5000])
        builds = [
            {
                "org_id": org.id,
                "ecosystem": "npm",
                "package": pkg,
                "version": f"{ver}-graft.1",
                "upstream_version": ver,
                "kind": "patched",
                "filename": f"{pkg}-{ver}-graft.1.tgz",
                "digest": "sha256:" + "0" * 64,
                "size": 1,
                "fixes": [f"CVE-2024-{10000 + rng.randrange(1000)}"],
                "attrs": {},
                "created_at": now,
            }
            for pkg, ver in rng.sample(sorted(seen), patched)
        ]
        await s.execute(insert(CatalogArtifact), builds)
    await db.dispose()


def _schemes() -> Any:
    from graft import ecosystems
    from graft.settings import Settings
    from graft.vulns import collect

    return collect(ecosystems.load(), Settings())


def _phase(url: str, what: str, source: str, out: Any) -> None:
    """In a fresh process: import or match, then report the time and the peak RSS."""

    async def run() -> dict[str, Any]:
        from graft.db import Database
        from graft.vulns import VulnService

        db = Database(url)
        service = VulnService(db)
        service.register(_schemes())
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        if what == "import":
            summary = await service.import_osv(source)
            count = summary.records
        else:
            count = await service.refresh()
        seconds = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        await db.dispose()
        return {"count": count, "seconds": seconds, "peak_rss_mib": rss / 1024,
                "rss_before_mib": rss0 / 1024}  # fmt: skip

    out.put(asyncio.run(run()))


def phase(url: str, what: str, source: str = "") -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_phase, args=(url, what, source, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


QUERIES: list[dict[str, Any]] = [
    {},
    {"status": "no patch available"},
    {"severity": "high", "sort": "-severity"},
    {"status": "patched available", "sort": "package"},
    {"text": "pkg-12", "sort": "-count"},
    {"ecosystem": "npm", "severity": "critical", "text": "7"},
]


async def pages(url: str, rounds: int) -> dict[str, Any]:
    from graft.db import Database
    from graft.vulns import LibraryQuery, VulnService

    db = Database(url)
    service = VulnService(db)
    service.register(_schemes())
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for q in QUERIES:
            name = json.dumps(q, sort_keys=True)
            start = time.perf_counter()
            page = await service.list_library(1, LibraryQuery(limit=50, **q))
            if page.next_cursor:
                await service.list_library(1, LibraryQuery(limit=50, cursor=page.next_cursor, **q))
            times.setdefault(name, []).append((time.perf_counter() - start) / 2)
    await db.dispose()
    return {
        name: {"median_ms": statistics.median(t) * 1000, "max_ms": max(t) * 1000}
        for name, t in times.items()
    }


async def pg_admin(url: str, statement: str) -> None:
    from sqlalchemy import text

    from graft.db import Database

    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await db.dispose()


def run_backend(name: str, url: str, zip_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"[{name}] filling {args.entries:,} library entries …", flush=True)
    asyncio.run(fill(url, args.entries, args.packages, args.patched))
    print(f"[{name}] importing {args.records:,} records …", flush=True)
    imported = phase(url, "import", str(zip_path))
    print(f"[{name}] matching …", flush=True)
    matched = phase(url, "match")
    print(f"[{name}] library pages …", flush=True)
    timed = asyncio.run(pages(url, args.rounds))
    reimport = phase(url, "import", str(zip_path))  # nothing changed: the incremental path
    worst = max(v["max_ms"] for v in timed.values())
    result = {
        "import_records_per_s": imported["count"] / imported["seconds"],
        "import_seconds": imported["seconds"],
        "import_peak_rss_mib": imported["peak_rss_mib"],
        "reimport_unchanged_seconds": reimport["seconds"],
        "match_entries_per_s": matched["count"] / matched["seconds"],
        "match_seconds": matched["seconds"],
        "match_peak_rss_mib": matched["peak_rss_mib"],
        "entries_matched": matched["count"],
        "pages": timed,
        "worst_page_ms": worst,
        "worst_page_vs_1s_budget": worst / 1000,
    }
    print(
        f"[{name}] import {result['import_records_per_s']:,.0f} records/s "
        f"({imported['seconds']:.1f} s, peak RSS {imported['peak_rss_mib']:.0f} MiB); "
        f"re-import unchanged {reimport['seconds']:.1f} s; "
        f"match {result['match_entries_per_s']:,.0f} entries/s ({matched['seconds']:.1f} s, "
        f"peak RSS {matched['peak_rss_mib']:.0f} MiB)"
    )
    for q, t in timed.items():
        print(f"[{name}]   page {q}: median {t['median_ms']:.1f} ms, max {t['max_ms']:.1f} ms")
    print(f"[{name}] worst page ÷ 1 s budget = {result['worst_page_vs_1s_budget']:.3f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--packages", type=int, default=20_000, help="names with advisories")
    parser.add_argument("--patched", type=int, default=1_000, help="patched builds published")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args()

    results: dict[str, Any] = {"args": vars(args), "machine": machine_info()}
    with tempfile.TemporaryDirectory(prefix="graft-bench-vulns-") as tmp:
        zip_path = Path(tmp) / "all.zip"
        start = time.perf_counter()
        generate(zip_path, args.records, args.packages)
        print(f"generated {args.records:,} records in {time.perf_counter() - start:.1f} s "
              f"({zip_path.stat().st_size / 2**20:.1f} MiB zip)")  # fmt: skip
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'graft.db'}"
        results["sqlite"] = run_backend("sqlite", sqlite_url, zip_path, args)
        if not args.no_pg:
            name = f"graft_bench_{uuid.uuid4().hex[:10]}"
            try:
                asyncio.run(pg_admin(args.pg_url, f'CREATE DATABASE "{name}"'))
            except OSError as exc:
                print(f"PostgreSQL not reachable ({exc}); skipped")
            else:
                try:
                    url = f"{args.pg_url.rsplit('/', 1)[0]}/{name}"
                    results["postgresql"] = run_backend("postgresql", url, zip_path, args)
                finally:
                    asyncio.run(
                        pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    )
    if not args.no_json:
        print(f"JSON: {write_json('vulns', results)}")


if __name__ == "__main__":
    main()
