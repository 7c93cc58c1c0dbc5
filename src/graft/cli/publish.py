"""`graft publish ECOSYSTEM FILE…`: upload patched or private builds to a Graft server."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Annotated, cast

import httpx
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from graft.cli.app import app
from graft.cli.common import err, fail, out

publish_app = typer.Typer(
    help="Publish patched builds (same version, CVEs fixed) or private packages.",
    no_args_is_help=True,
)
app.add_typer(publish_app, name="publish")

UrlOpt = Annotated[str, typer.Option(help="Graft's URL.", envvar="GRAFT_URL")]
TokenOpt = Annotated[
    str, typer.Option(help="A token with the publish scope.", envvar="GRAFT_TOKEN")
]


FixesOpt = Annotated[
    list[str] | None,
    typer.Option("--fixes", help="Advisory fixed by this build (repeatable)."),
]
AllowMissingOpt = Annotated[
    bool, typer.Option(help="Allow a patched build of a version the upstream lacks.")
]


class _Reading:
    """A file object that advances a progress bar as httpx reads it."""

    def __init__(self, fh: IO[bytes], progress: Progress, task: int) -> None:
        self.fh, self.progress, self.task = fh, progress, task

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.progress.advance(self.task, len(data))  # type: ignore[arg-type]
        return data

    def fileno(self) -> int:  # lets httpx send a Content-Length
        return self.fh.fileno()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@publish_app.command("pypi")
def pypi(
    files: Annotated[
        list[Path],
        typer.Argument(help="Wheels and sdists.", exists=True, dir_okay=False, readable=True),
    ],
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    fixes: Annotated[
        list[str] | None,
        typer.Option(
            "--fixes", help="Advisory fixed by this build, e.g. CVE-2024-1234 (repeatable)."
        ),
    ] = None,
    allow_missing_upstream: Annotated[
        bool, typer.Option(help="Allow a patched build of a version no upstream has.")
    ] = False,
    private: Annotated[
        bool,
        typer.Option(
            help="Publish as this organization's private package even though "
            "the name exists upstream (it is then never taken from upstream)."
        ),
    ] = False,
) -> None:
    """Upload to /pypi/legacy/. A patched build's version is <upstream>+<label>.<N>."""

    def fields(path: Path) -> dict[str, str | list[str]]:
        data: dict[str, str | list[str]] = {
            ":action": "file_upload",
            "sha256_digest": _sha256(path),
            "graft_fixes": list(fixes or []),
        }
        if allow_missing_upstream:
            data["graft_allow_missing_upstream"] = "1"
        if private:
            data["graft_private"] = "1"
        return data

    _upload_all(f"{url.rstrip('/')}/pypi/legacy/", ("__token__", token), files, "content", fields)


@publish_app.command("deb")
def deb(
    files: Annotated[
        list[Path],
        typer.Argument(help="Patched .deb files.", exists=True, dir_okay=False, readable=True),
    ],
    codename: Annotated[str, typer.Option(help="e.g. bookworm, trixie, jammy, noble.")],
    distro: Annotated[str, typer.Option(help="debian or ubuntu.")] = "debian",
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    fixes: FixesOpt = None,
    allow_missing_upstream: AllowMissingOpt = False,
) -> None:
    """Upload patched .debs (version <upstream>.<label>.<N>); Graft serves each as its own
    name and as rootio-<name>."""
    if distro not in ("debian", "ubuntu"):
        raise fail(f"--distro must be debian or ubuntu, not {distro!r}", 2)

    fields = _os_package_fields(fixes, allow_missing_upstream)
    endpoint = f"{url.rstrip('/')}/{distro}/{codename}/upload"
    _upload_all(endpoint, ("rootio", token), files, "file", fields)


@publish_app.command("apk")
def apk(
    files: Annotated[
        list[Path],
        typer.Argument(help="Patched .apk files.", exists=True, dir_okay=False, readable=True),
    ],
    release: Annotated[str, typer.Option(help="Alpine release, e.g. 3.20.")],
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    fixes: FixesOpt = None,
    allow_missing_upstream: AllowMissingOpt = False,
) -> None:
    """Upload patched .apk files (pkgrel = upstream pkgrel + 007 + N, e.g. 8.9.1-r10071);
    Graft re-signs them and serves each as its own name and as rootio-<name>."""

    fields = _os_package_fields(fixes, allow_missing_upstream)
    _upload_all(
        f"{url.rstrip('/')}/alpine/{release}/upload", ("root", token), files, "file", fields
    )


def _os_package_fields(
    fixes: list[str] | None, allow_missing_upstream: bool
) -> Callable[[Path], dict[str, str | list[str]]]:
    """The form fields of a .deb or .apk upload (the same for every file)."""
    data: dict[str, str | list[str]] = {"fixes": list(fixes or [])}
    if allow_missing_upstream:
        data["allow_missing_upstream"] = "1"
    return lambda _path: data


def _upload_all(
    endpoint: str,
    auth: tuple[str, str],
    files: list[Path],
    part: str,
    fields: Callable[[Path], dict[str, str | list[str]]],
) -> None:
    """POST each file as multipart with a progress bar; print the server's answer."""
    if not auth[1]:
        raise fail("a token is needed: --token or GRAFT_TOKEN (publish scope)", 2)
    failures = 0
    with httpx.Client(auth=auth, timeout=httpx.Timeout(300, connect=10)) as client:
        for path in files:
            with (
                path.open("rb") as fh,
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    console=err,
                    transient=True,
                ) as progress,
            ):
                task = progress.add_task(path.name, total=path.stat().st_size)
                reader = cast(IO[bytes], _Reading(fh, progress, task))
                try:
                    response = client.post(
                        endpoint,
                        data=fields(path),
                        files={part: (path.name, reader, "application/octet-stream")},
                    )
                except httpx.HTTPError as exc:
                    raise fail(f"cannot reach {endpoint}: {exc}") from None
            if response.status_code == 200:
                out.print(response.text.strip())
            else:
                failures += 1
                err.print(
                    f"[bold red]error:[/] {path.name}: {response.status_code} "
                    f"{response.text.strip()}",
                    highlight=False,
                )
    if failures:
        raise typer.Exit(1)


@publish_app.command("npm")
def npm(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="npm tarballs (.tgz, e.g. from npm pack).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    fixes: FixesOpt = None,
    allow_missing_upstream: AllowMissingOpt = False,
    private: Annotated[
        bool,
        typer.Option(
            help="Publish as this organization's private package even though "
            "the name exists upstream (it is then never taken from upstream)."
        ),
    ] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="dist-tag to point at the published version (repeatable)."),
    ] = None,
) -> None:
    """Upload to /npm/. A patched build's version is <upstream>-<label>.<N> (a prerelease:
    installed by an exact pin or an override, never by an ordinary range)."""
    data: dict[str, str | list[str]] = {"fixes": list(fixes or []), "tag": list(tag or [])}
    if allow_missing_upstream:
        data["allow_missing_upstream"] = "1"
    if private:
        data["private"] = "1"
    endpoint = f"{url.rstrip('/')}/npm/-/graft/publish"
    _upload_all(endpoint, ("rootio", token), files, "file", lambda _path: data)


@publish_app.command("maven")
def maven(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="The POM and the files of one version (jar, -sources.jar, .asc …), named "
            "<artifactId>-<version>[-<classifier>].<ext>.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    fixes: FixesOpt = None,
    allow_missing_upstream: AllowMissingOpt = False,
    private: Annotated[
        bool,
        typer.Option(
            help="Publish as this organization's private artifact even though the "
            "groupId:artifactId exists upstream (it is then never taken from upstream)."
        ),
    ] = False,
) -> None:
    """Deploy one version to /maven/ as `mvn deploy` does (a PUT per file, then its checksum).
    A patched build's version is <upstream>-<label>.<N>, e.g. 2.15.2-graft.1."""
    from graft.ecosystems.maven import pom as pom_file
    from graft.errors import GraftError

    poms = [p for p in files if p.name.endswith(".pom")]
    if len(poms) != 1:
        raise fail("give exactly one .pom: it names the groupId, artifactId and version", 2)
    try:
        parsed = pom_file.parse(poms[0].read_bytes())
    except GraftError as exc:
        raise fail(f"{poms[0]}: {exc.message}", 2) from None
    stem = f"{parsed.artifact_id}-{parsed.version}"
    for path in files:
        if not (path.name.startswith(stem) and path.name[len(stem) : len(stem) + 1] in ".-"):
            raise fail(f"{path.name} is not named {stem}[-<classifier>].<ext>: rename it", 2)
    if not token:
        raise fail("a token is needed: --token or GRAFT_TOKEN (publish scope)", 2)
    directory = "/".join((*parsed.group_id.split("."), parsed.artifact_id, parsed.version))
    base = f"{url.rstrip('/')}/maven/{directory}/"
    headers = {"X-Graft-Fixes": ", ".join(fixes or [])} if fixes else {}
    if private:
        headers["X-Graft-Private"] = "true"
    if allow_missing_upstream:
        headers["X-Graft-Allow-Missing-Upstream"] = "true"
    ordered = poms + [p for p in files if p not in poms]  # a bad POM stops before anything else
    with httpx.Client(auth=("graft", token), timeout=httpx.Timeout(300, connect=10)) as client:
        for path in ordered:
            target = base + path.name
            with (
                path.open("rb") as fh,
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    console=err,
                    transient=True,
                ) as progress,
            ):
                size = path.stat().st_size
                task = progress.add_task(path.name, total=size)
                reader = _Reading(fh, progress, task)
                body = iter(functools.partial(reader.read, 1 << 16), b"")
                try:
                    response = client.put(
                        target, content=body, headers={**headers, "Content-Length": str(size)}
                    )
                    if response.status_code == 201:  # Graft compares it with what it stored
                        response = client.put(f"{target}.sha256", content=_sha256(path))
                except httpx.HTTPError as exc:
                    raise fail(f"cannot reach {target}: {exc}") from None
            if response.status_code != 201:
                err.print(
                    f"[bold red]error:[/] {path.name}: {response.status_code} "
                    f"{response.text.strip()}",
                    highlight=False,
                )
                raise typer.Exit(1)
            out.print(f"deployed {directory}/{path.name}", highlight=False)
    out.print(f"{parsed.group_id}:{parsed.artifact_id}:{parsed.version} is published")
