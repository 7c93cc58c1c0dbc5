"""The small interface every ecosystem package implements.

An ecosystem is a folder under `graft/ecosystems/` whose package exposes `ECOSYSTEM`, an object
implementing `Ecosystem`; adding one means adding the folder and its module name to `MODULES` in
`graft/ecosystems/__init__.py`. The core never imports an ecosystem by name: `graft.server`
mounts whatever `load()` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from graft.accounts.models import Principal
    from graft.context import AppContext


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publish stored: enough for the CLI/API to report and for the catalog to index."""

    ecosystem: str
    package: str
    version: str
    digests: tuple[str, ...]
    patched: bool
    detail: dict[str, Any]


@runtime_checkable
class Ecosystem(Protocol):
    #: short stable identifier used in usage events and the API ("pypi", "npm", "apt" …)
    name: str
    #: URL prefixes this ecosystem owns, e.g. ("/pypi",) or ("/debian", "/ubuntu")
    prefixes: tuple[str, ...]

    def routes(self, ctx: AppContext) -> Sequence[BaseRoute]:
        """Starlette routes (full paths, including the prefix) served by this ecosystem."""
        ...

    def sort_key(self, version: str) -> Any:
        """A key that orders versions the way this ecosystem's clients do."""
        ...

    async def publish(
        self, ctx: AppContext, principal: Principal, path: Path, filename: str, **options: Any
    ) -> PublishResult:
        """Store a patched or private build for the principal's organization. `path` is the
        uploaded file, already on local disk; `filename` is the name the client gave it."""
        ...
