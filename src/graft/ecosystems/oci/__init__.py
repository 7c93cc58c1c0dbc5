"""Container images: an OCI distribution-spec 1.1 registry at `/v2/` with the Docker token
flow, verified pull-through of upstream registries and the organization's patched images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from graft.accounts.models import Principal
from graft.context import AppContext
from graft.ecosystems.base import PublishResult


class OCI:
    name = "oci"
    prefixes = ("/v2",)

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        from graft.ecosystems.oci.routes import routes

        return routes(ctx)

    def sort_key(self, version: str) -> Any:
        # Tags have no order of their own; the spec lists them lexically.
        return version

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        from graft.ecosystems.oci.publish import publish_archive

        return await publish_archive(ctx, principal, path, filename, **options)


ECOSYSTEM = OCI()
