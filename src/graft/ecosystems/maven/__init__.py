"""Java packages: a Maven 2 repository under `/maven/` with verified pull-through and patched
builds, deployed with `mvn deploy` or `graft publish maven`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.context import AppContext
from graft.ecosystems.base import PublishResult
from graft.ecosystems.maven import versions
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


class Maven:
    name = "maven"
    prefixes = ("/maven",)

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        from graft.ecosystems.maven.routes import routes

        return routes(ctx)

    def sort_key(self, version: str) -> Any:
        return versions.sort_key(version)

    def version_schemes(self, settings: Settings) -> Sequence[VersionScheme]:
        """Version order, names and install commands for graft.vulns."""
        from graft.ecosystems.maven.advisories import scheme

        return [scheme(settings)]

    def in_range(self, version: str, spec: str) -> bool:
        """Whether `version` satisfies a Maven version range such as `[1.0,2.0)` (for
        vulnerability matching); raises versions.InvalidVersion for a malformed range."""
        return versions.parse_range(spec).contains(version)

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        """`filename` is the repository path: com/example/lib/1.0-graft.1/lib-1.0-graft.1.jar"""
        from graft.ecosystems.maven.publish import deploy_local

        stored = await deploy_local(ctx, principal, path, filename, **options)
        return PublishResult(
            ecosystem=self.name,
            package=stored.package,
            version=stored.version,
            digests=(stored.digest,),
            patched=stored.kind == "patched",
            detail={"filename": stored.filename, "fixes": list(stored.fixes)},
        )


ECOSYSTEM = Maven()
