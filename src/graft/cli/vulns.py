"""`graft vulns import`, `graft library list`, `graft request submit|list|set`,
`graft version sort|match`.

`vulns import` writes the configured database directly (it runs on the server host, like
`graft init`); `library` and `request` talk to a Graft server's API with a token, so they see
exactly what that token's organization sees; `version` needs neither.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from graft.cli.app import app
from graft.cli.common import JsonOpt, err, fail, out, run_db, settings, table, when

if TYPE_CHECKING:
    from graft.vulns.schemes import VersionScheme

vulns_app = typer.Typer(help="Advisories: import OSV records.", no_args_is_help=True)
library_app = typer.Typer(
    help="What your organization installed, and its vulnerability status.", no_args_is_help=True
)
request_app = typer.Typer(help="Ask for patched builds; follow the requests.", no_args_is_help=True)
version_app = typer.Typer(
    help="Each ecosystem's version order and ranges, as Graft applies them.", no_args_is_help=True
)
app.add_typer(vulns_app, name="vulns")
app.add_typer(library_app, name="library")
app.add_typer(request_app, name="request")
app.add_typer(version_app, name="version")

UrlOpt = Annotated[str, typer.Option(help="Graft's URL.", envvar="GRAFT_URL")]
TokenOpt = Annotated[str, typer.Option(help="A Graft token.", envvar="GRAFT_TOKEN")]


def _schemes() -> dict[str, VersionScheme]:
    from graft import ecosystems
    from graft.vulns.schemes import collect

    return collect(ecosystems.load(), settings())


def _api(url: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    if not token:
        raise fail("a token is needed: --token or GRAFT_TOKEN", 2)
    try:
        resp = httpx.request(
            method, f"{url.rstrip('/')}/api{path}", auth=("graft", token), timeout=60, **kwargs
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
    if resp.status_code >= 400:
        try:
            message = resp.json().get("message") or resp.text
        except ValueError:
            message = resp.text
        raise fail(f"{resp.status_code}: {message}")
    return resp.json()


# -- vulns import ------------------------------------------------------------------------------
@vulns_app.command("import")
def vulns_import(
    source: Annotated[
        str, typer.Argument(help="A zip of OSV records, a directory of them, a JSON file or a URL.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Import OSV advisories (incremental by `modified`; all or nothing), then compute the
    status of the library entries they name."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from graft.vulns import VulnService

    schemes = _schemes()

    async def work(db: Any, cfg: Any) -> tuple[Any, int]:
        service = VulnService(db)
        service.register(schemes)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json or not err.is_terminal,
        ) as bar:
            task = bar.add_task("importing", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = await service.import_osv(source, progress=progress)
            bar.update(task, description="matching the library", completed=0, total=None)
            matched = await service.refresh()
        return summary, matched

    summary, matched = run_db(work)
    if as_json:
        out.print_json(json.dumps({**summary.model_dump(mode="json"), "entries_matched": matched}))
        return
    out.print(
        f"{summary.records} records read: {summary.imported} imported "
        f"({summary.withdrawn} withdrawn), {summary.unchanged} unchanged, "
        f"{summary.skipped} only for ecosystems Graft does not serve; "
        f"{matched} library entries matched."
    )
    if summary.unknown_ecosystems:
        listed = ", ".join(f"{k} ({v})" for k, v in summary.unknown_ecosystems.items())
        out.print(f"Ecosystems not served, skipped: {listed}")
    if summary.malformed:
        err.print(f"[yellow]{len(summary.malformed)} malformed records skipped:[/]")
        for line in summary.malformed[:50]:
            err.print(f"  {line}", highlight=False, markup=False)
        if len(summary.malformed) > 50:
            err.print(f"  … and {len(summary.malformed) - 50} more")


# -- library -----------------------------------------------------------------------------------
@library_app.command("list")
def library_list(
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    ecosystem: Annotated[str | None, typer.Option(help="pypi, npm, maven, debian …")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="patched available | patched in use | no patch available | not affected"),
    ] = None,
    severity: Annotated[
        str | None, typer.Option(help="At least this level unfixed: low … critical.")
    ] = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="In the name.")] = None,
    sort: Annotated[str, typer.Option(help="package, last_seen, count, severity; -x: desc.")] = (
        "-last_seen"
    ),
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="From a previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The organization's library (GET /api/library)."""
    params = {
        k: v
        for k, v in {
            "ecosystem": ecosystem,
            "status": status,
            "severity": severity,
            "q": search,
            "sort": sort,
            "limit": limit,
            "cursor": cursor,
        }.items()
        if v is not None
    }
    page = _api(url, token, "GET", "/library", params=params)
    if as_json:
        out.print_json(json.dumps(page))
        return
    rows = [
        (
            e["id"],
            e["ecosystem"] + (f" {e['distribution']}" if e["distribution"] else ""),
            e["package"],
            e["version"],
            e["served"],
            e["status"] or "pending",
            e["critical"],
            e["high"],
            e["patched_version"] or "",
            e["count"],
            when_text(e["last_seen"]),
        )
        for e in page["items"]
    ]
    table(
        f"Library ({page['total']} entries)",
        ["id", "ecosystem", "package", "version", "served", "status", "crit", "high",
         "patched build", "count", "last seen"],
        rows,
        wide=True,
    )  # fmt: skip
    if page["next_cursor"]:
        out.print(f"More: --cursor {page['next_cursor']}")


def when_text(value: str) -> str:
    import datetime as dt

    return when(dt.datetime.fromisoformat(value))


# -- requests ----------------------------------------------------------------------------------
def _request_rows(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["id"],
            r["ecosystem"],
            r["package"],
            r["version"] or "any",
            r["status"],
            r["published_version"] or "",
            r["created_by"] or "",
            when_text(r["created_at"]),
        )
        for r in items
    ]


_REQUEST_COLUMNS = ["id", "ecosystem", "package", "version", "status", "published", "by", "created"]


@request_app.command("submit")
def request_submit(
    ecosystem: Annotated[str, typer.Argument(help="pypi, npm, maven, debian, ubuntu, alpine …")],
    package: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument(help="The version you use (optional).")] = "",
    reason: Annotated[str, typer.Option(help="Why, e.g. the CVE that worries you.")] = "",
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Ask for a patched build (POST /api/requests)."""
    body = {"ecosystem": ecosystem, "package": package, "version": version, "reason": reason}
    created = _api(url, token, "POST", "/requests", json=body)
    if as_json:
        out.print_json(json.dumps(created))
    else:
        out.print(f"Request {created['id']} opened for {ecosystem} {created['package']}.")


@request_app.command("list")
def request_list(
    status: Annotated[str | None, typer.Option(help="open, in progress, published, declined.")] = (
        None
    ),
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """The organization's package requests."""
    params = {"status": status} if status else {}
    items = _api(url, token, "GET", "/requests", params=params)
    if as_json:
        out.print_json(json.dumps(items))
        return
    table("Package requests", _REQUEST_COLUMNS, _request_rows(items), wide=True)


@request_app.command("set")
def request_set(
    request_id: Annotated[int, typer.Argument()],
    status: Annotated[str, typer.Argument(help="in progress, published, declined or open.")],
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Move a request (admin token)."""
    updated = _api(url, token, "PATCH", f"/requests/{request_id}", json={"status": status})
    if as_json:
        out.print_json(json.dumps(updated))
    else:
        out.print(f"Request {updated['id']} is now {updated['status']}.")


# -- version tools -----------------------------------------------------------------------------
def _scheme(ecosystem: str) -> VersionScheme:
    schemes = _schemes()
    if ecosystem not in schemes:
        raise fail(f"unknown ecosystem {ecosystem!r}; known: {', '.join(sorted(schemes))}", 2)
    return schemes[ecosystem]


@version_app.command("sort")
def version_sort(
    ecosystem: Annotated[str, typer.Argument(help="pypi, npm, maven, debian, ubuntu, alpine.")],
    reverse: Annotated[bool, typer.Option("--reverse", "-r", help="Highest first.")] = False,
) -> None:
    """Read versions (one per line) on standard input; print them in the ecosystem's order."""
    scheme = _scheme(ecosystem)
    versions = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if scheme.is_valid is not None:
        bad = [v for v in versions if not scheme.is_valid(v)]
        if bad:
            err.print(f"[yellow]not valid {ecosystem} versions (sorted first):[/] {', '.join(bad)}")
    for version in sorted(versions, key=scheme.sort_key, reverse=reverse):
        print(version)


def parse_osv_range(text: str) -> tuple[list[dict[str, Any]], list[str]] | None:
    """An OSV range: its JSON (a range object, a list of them, or an events list), or the
    shorthand `introduced=1.0,fixed=1.2`. None when the text is not one (a native range)."""
    stripped = text.strip()
    data: Any = None
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except ValueError:  # a Maven range such as [1.0,2.0)
            data = None
    if data is not None:
        if isinstance(data, dict) and "events" in data:
            data = [data]
        if isinstance(data, dict) and "ranges" in data:  # an `affected` entry
            return list(data.get("ranges") or []), list(data.get("versions") or [])
        if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
            if all("events" in d for d in data):
                return data, []
            return [{"type": "ECOSYSTEM", "events": data}], []
        raise fail('an OSV range is {"type": …, "events": [...]} or a list of events', 2)
    parts = [p.strip() for p in stripped.split(",") if p.strip()]
    kinds = ("introduced", "fixed", "last_affected", "limit")
    if parts and all(p.partition("=")[0].strip() in kinds and "=" in p for p in parts):
        events = [{p.partition("=")[0].strip(): p.partition("=")[2].strip()} for p in parts]
        return [{"type": "ECOSYSTEM", "events": events}], []
    return None


@version_app.command("match")
def version_match(
    ecosystem: Annotated[str, typer.Argument(help="pypi, npm, maven, debian, ubuntu, alpine.")],
    version: Annotated[str, typer.Argument()],
    range_: Annotated[
        str,
        typer.Argument(
            metavar="RANGE",
            help="OSV (introduced=1.0,fixed=1.2 or the JSON) or the ecosystem's own: "
            "^1.2 (npm), >=1.0,<2 (PyPI), [1.0,2.0) (Maven), '>= 1.2-1' (dpkg), '<1.2-r1' (apk).",
        ),
    ],
) -> None:
    """Is VERSION inside RANGE? Prints yes or no; exit status 0 for yes, 1 for no."""
    from graft.vulns.osv import Malformed, parse_ranges
    from graft.vulns.ranges import affects

    scheme = _scheme(ecosystem)
    if scheme.is_valid is not None and not scheme.is_valid(version):
        raise fail(f"{version!r} is not a valid {ecosystem} version", 2)
    osv_range = parse_osv_range(range_)
    try:
        if osv_range is not None:
            ranges, listed = osv_range
            inside = affects(scheme, version, parse_ranges(ranges, "range"), listed)
        elif scheme.native_range is not None:
            inside = scheme.native_range(version, range_)
        else:
            raise fail(f"{ecosystem} has no native range syntax; give an OSV range", 2)
    except (Malformed, ValueError) as exc:
        raise fail(str(exc), 2) from None
    print("yes" if inside else "no")
    raise typer.Exit(0 if inside else 1)
