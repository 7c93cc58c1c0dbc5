"""OS packages for Alpine: signed APK repositories of `rootio-` packages with upstream
fallback (`/alpine/<release>/<arch>/`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.context import AppContext
from graft.ecosystems.apk import versions
from graft.ecosystems.base import PublishResult
from graft.settings import Settings
from graft.vulns.schemes import VersionScheme


class Apk:
    name = "apk"
    prefixes = ("/alpine",)

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        from graft.ecosystems.apk.routes import routes

        return routes(ctx)

    def sort_key(self, version: str) -> Any:
        return versions.sort_key(version)

    def version_schemes(self, settings: Settings) -> Sequence[VersionScheme]:
        """Version order, names and install commands for graft.vulns."""
        from graft.ecosystems.apk.advisories import scheme

        return [scheme(settings)]

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        from graft.ecosystems.apk.publish import ApkOptions, publish_apk
        from graft.ecosystems.apk.repo import AlpineRepository

        published = await publish_apk(
            ctx, AlpineRepository(ctx), principal, path, ApkOptions(**options)
        )
        return PublishResult(
            ecosystem="alpine",
            package=published.package,
            version=published.version,
            digests=(published.digest,),
            patched=True,
            detail={"filename": published.filename, "fixes": list(published.fixes)},
        )


ECOSYSTEM = Apk()
