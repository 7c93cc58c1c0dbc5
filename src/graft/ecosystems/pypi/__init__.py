"""Python packages: `/pypi/simple/` with verified pull-through and patched builds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.context import AppContext
from graft.ecosystems.base import PublishResult
from graft.ecosystems.pypi import versions
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


class PyPI:
    name = "pypi"
    prefixes = ("/pypi",)

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        from graft.ecosystems.pypi.routes import routes

        return routes(ctx)

    def sort_key(self, version: str) -> Any:
        return versions.sort_key(version)

    def version_schemes(self, settings: Settings) -> Sequence[VersionScheme]:
        """Version order, names and install commands for graft.vulns."""
        from graft.ecosystems.pypi.advisories import scheme

        return [scheme(settings)]

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        from graft.ecosystems.pypi.publish import PublishOptions, publish_file
        from graft.ecosystems.pypi.service import PyPIService

        published = await publish_file(
            ctx, PyPIService(ctx), principal, path, filename, PublishOptions(**options)
        )
        return PublishResult(
            ecosystem=self.name,
            package=published.package,
            version=published.version,
            digests=(published.digest,),
            patched=published.kind == "patched",
            detail={"filename": published.filename, "fixes": list(published.fixes)},
        )


ECOSYSTEM = PyPI()
