"""An ecosystem is a package with routes, version order and publish: prove the core mounts one,
authenticates its routes, records its usage, and refuses a clash."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from graft import ecosystems
from graft.accounts.models import Principal
from graft.accounts.scopes import Scope, parse_scopes
from graft.context import AppContext
from graft.ecosystems.base import Ecosystem, PublishResult
from graft.server import create_app
from graft.settings import load_settings
from graft.usage import Served, UsageEvent


class Toy:
    name = "toy"
    prefixes = ("/toy",)

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        async def download(request: Request) -> Response:
            principal = await ctx.authenticate(request, Scope.READ)
            pkg, version = request.path_params["pkg"], request.path_params["version"]
            ctx.usage.record(
                UsageEvent(
                    principal.org_id,
                    principal.account_id,
                    self.name,
                    pkg,
                    version,
                    Served.UPSTREAM,
                )
            )
            return PlainTextResponse(f"{pkg}-{version}")

        return [Route("/toy/{pkg}/{version}", download)]

    def sort_key(self, version: str) -> Any:
        return tuple(int(p) for p in version.split("."))

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        digest = await ctx.blobs.put(path.read_bytes())  # noqa: ASYNC240 - tiny test file
        return PublishResult(self.name, filename, "1.0", (digest,), True, {})


def test_toy_implements_the_protocol() -> None:
    assert isinstance(Toy(), Ecosystem)
    assert sorted(["1.10", "1.2", "1.9"], key=Toy().sort_key) == ["1.2", "1.9", "1.10"]


def test_clashing_ecosystems_are_refused() -> None:
    class Other(Toy):
        name = "other"

    with pytest.raises(ValueError, match="/toy"):
        ecosystems.check([Toy(), Other()])
    with pytest.raises(TypeError):
        ecosystems.check([object()])  # type: ignore[list-item]


async def test_core_mounts_authenticates_and_records(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, access_log=False)
    ctx = AppContext.build(settings)
    await ctx.db.migrate()
    await ctx.accounts.create_org("acme")
    await ctx.accounts.create_account("acme", "ci", kind="service")
    token = (await ctx.accounts.create_token("acme", "ci", parse_scopes("read"))).token
    app = create_app(settings, ecosystems=[Toy()], ctx=ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://graft") as client:
        r = await client.get("/toy/widget/1.2")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert r.text == "authentication required: send a Graft token\n"  # text, not JSON
        r = await client.get("/toy/widget/1.2", auth=("anyone", token))
        assert r.status_code == 200 and r.text == "widget-1.2"
    await ctx.usage.flush()
    from sqlalchemy import select

    from graft.db.models import LibraryEntry

    async with ctx.db.session() as s:
        (entry,) = await s.scalars(select(LibraryEntry))
    assert (entry.ecosystem, entry.package, entry.version, entry.count) == (
        "toy",
        "widget",
        "1.2",
        1,
    )
    assert entry.last_seen <= dt.datetime.now(dt.UTC)
    published = await Toy().publish(ctx, None, _file(tmp_path), "w.bin")  # type: ignore[arg-type]
    assert await ctx.blobs.exists(published.digests[0])
    await ctx.stop()


def _file(tmp_path: Path) -> Path:
    p = tmp_path / "w.bin"
    p.write_bytes(b"payload")
    return p
