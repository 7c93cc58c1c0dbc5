"""JavaScript packages: the npm registry API under `/npm/` (npm, pnpm, Yarn) with verified
pull-through (sha512 integrity) and patched builds `<upstream>-<label>.<N>`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.context import AppContext
from graft.ecosystems.base import PublishResult
from graft.ecosystems.npm import versions
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


class Npm:
    name = "npm"
    prefixes = ("/npm",)

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        from graft.ecosystems.npm.routes import routes

        return routes(ctx)

    def sort_key(self, version: str) -> Any:
        return versions.sort_key(version)

    def version_schemes(self, settings: Settings) -> Sequence[VersionScheme]:
        """Version order, names and install commands for graft.vulns."""
        from graft.ecosystems.npm.advisories import scheme

        return [scheme(settings)]

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        from graft.ecosystems.npm.publish import PublishOptions, publish_tarball
        from graft.ecosystems.npm.service import NpmService

        published = await publish_tarball(
            ctx, NpmService(ctx), principal, path, filename, PublishOptions(**options)
        )
        f = published.file
        return PublishResult(
            ecosystem=self.name,
            package=f.package,
            version=f.version,
            digests=(f.digest,),
            patched=f.kind == "patched",
            detail={"filename": f.filename, "fixes": list(f.fixes), "tags": list(published.tags)},
        )


ECOSYSTEM = Npm()
