"""`graft upstream add|list|remove`: the upstream registries Graft pulls through."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError

from graft.cli.app import app
from graft.cli.common import JsonOpt, emit_json, fail, out, run_db, table
from graft.db import Database
from graft.settings import Settings
from graft.upstream.config import ECOSYSTEMS, UpstreamConfig
from graft.upstream.registry import UpstreamRegistry

upstream_app = typer.Typer(
    help="Upstream registries, in priority order per ecosystem. Entries from graft.toml "
    "([[upstream]] tables) are listed too but are edited in that file.",
    no_args_is_help=True,
)
app.add_typer(upstream_app, name="upstream")


def _registry(db: Database, cfg: Settings) -> UpstreamRegistry:
    return UpstreamRegistry(db, cfg.upstream)


@upstream_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Unique name, e.g. pypi-mirror.")],
    ecosystem: Annotated[str, typer.Option(help=f"One of: {', '.join(ECOSYSTEMS)}.")],
    url: Annotated[str, typer.Option(help="Base URL, e.g. https://mirror.example.com/simple/.")],
    priority: Annotated[int, typer.Option(help="Lower is asked first.")] = 100,
    username: Annotated[str | None, typer.Option(help="HTTP Basic user.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="HTTP Basic password (or GRAFT_UPSTREAM_PASSWORD).",
            envvar="GRAFT_UPSTREAM_PASSWORD",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Bearer token (or GRAFT_UPSTREAM_TOKEN).", envvar="GRAFT_UPSTREAM_TOKEN"),
    ] = None,
    ttl: Annotated[int, typer.Option(help="Seconds an index page stays fresh.")] = 600,
    negative_ttl: Annotated[int, typer.Option(help="Seconds a 404 is remembered.")] = 60,
    keyring: Annotated[str | None, typer.Option(help="Keyring file (APT/APK).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an upstream. Running servers use it from their next request on (on SQLite: within
    30 seconds)."""
    try:
        config = UpstreamConfig(
            ecosystem=ecosystem,
            name=name,
            url=url,
            priority=priority,
            username=username,
            password=SecretStr(password) if password else None,
            token=SecretStr(token) if token else None,
            ttl_seconds=ttl,
            negative_ttl_seconds=negative_ttl,
            keyring=keyring,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(problems, 2) from None
    added = run_db(lambda db, cfg: _registry(db, cfg).add(config))
    if as_json:
        emit_json(added)
    else:
        out.print(f"Added {added.ecosystem} upstream {added.name!r}: {added.url}")


@upstream_app.command("list")
def list_(
    ecosystem: Annotated[str | None, typer.Option(help="Only this ecosystem.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List upstreams (passwords and tokens are never shown)."""

    async def load(db: Database, cfg: Settings) -> list[UpstreamConfig]:
        registry = _registry(db, cfg)
        await registry.load()
        return registry.all()

    found = [u for u in run_db(load) if ecosystem in (None, u.ecosystem)]
    if as_json:
        emit_json(found)
        return
    rows = [
        (
            u.ecosystem,
            u.priority,
            u.name,
            u.url,
            "yes" if (u.username or u.token) else "",
            f"{u.ttl_seconds}s",
            u.source,
        )
        for u in found
    ]
    table("Upstreams", ["ecosystem", "priority", "name", "url", "auth", "ttl", "from"], rows)


@upstream_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Upstream name.")]) -> None:
    """Remove an upstream added with `graft upstream add` (running servers: as for add)."""
    run_db(lambda db, cfg: _registry(db, cfg).remove(name))
    out.print(f"Removed upstream {name!r}.")
