"""OS packages for Debian and Ubuntu: signed APT repositories of `rootio-` packages with
upstream fallback (`/debian/<codename>`, `/ubuntu/<codename>`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.context import AppContext
from graft.ecosystems.apt import versions
from graft.ecosystems.base import PublishResult
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


class Apt:
    name = "apt"
    prefixes = ("/debian", "/ubuntu", "/keys/graft-archive-keyring")

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        from graft.ecosystems.apt.routes import routes

        return routes(ctx)

    def sort_key(self, version: str) -> Any:
        return versions.sort_key(version)

    def version_schemes(self, settings: Settings) -> Sequence[VersionScheme]:
        """Version order, names and install commands for graft.vulns."""
        from graft.ecosystems.apt.advisories import schemes

        return schemes(settings)

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        from graft.ecosystems.apt.publish import DebOptions, publish_deb
        from graft.ecosystems.apt.repo import AptRepository

        distro = options.pop("distro", "debian")
        published = await publish_deb(
            ctx, AptRepository(ctx, distro), principal, path, DebOptions(**options)
        )
        return PublishResult(
            ecosystem=distro,
            package=published.package,
            version=published.version,
            digests=(published.digest,),
            patched=True,
            detail={"filename": published.filename, "fixes": list(published.fixes)},
        )


ECOSYSTEM = Apt()
