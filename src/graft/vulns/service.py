"""`VulnService`: the one object the API, the web pages, the CLI and the ecosystems call.

Built in `AppContext` with no version schemes; `graft.server` (and the CLI) register the
schemes of the loaded ecosystems with `register`, so the core never imports an ecosystem.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from graft.db import Database
from graft.vulns import library, status
from graft.vulns.models import (
    AdvisoryMatch,
    ImportSummary,
    LibraryEntryDetail,
    LibraryPage,
    LibraryQuery,
    RemediationResult,
    RequestStatus,
    RequestView,
)
from graft.vulns.schemes import VersionScheme

if TYPE_CHECKING:
    import httpx

    from graft.catalog.service import CatalogFile, CatalogService
    from graft.vulns.importer import Progress


class VulnService:
    def __init__(self, db: Database, catalog: CatalogService | None = None) -> None:
        self.db = db
        self.catalog = catalog
        self.schemes: dict[str, VersionScheme] = {}
        self._advisory_cache: dict[tuple[str, str], tuple[float, Any]] = {}
        if catalog is not None:
            catalog.listeners.append(self.on_published)

    def register(self, schemes: dict[str, VersionScheme]) -> None:
        self.schemes.update(schemes)

    # -- advisories ----------------------------------------------------------------------
    async def import_osv(
        self,
        source: str,
        *,
        progress: Progress | None = None,
        http: httpx.Client | None = None,
    ) -> ImportSummary:
        """Import OSV records from a zip, a directory, a JSON file or a URL (atomic,
        incremental by `modified`); the library entries they name become due."""
        from graft.vulns.importer import import_osv

        summary = await import_osv(self.db, self.schemes, source, progress=progress, http=http)
        self._advisory_cache.clear()
        return summary

    async def refresh(self, org_id: int | None = None) -> int:
        """Compute the status of due library entries; returns how many were computed."""
        return await status.refresh(self.db, self.schemes, org_id=org_id)

    # -- library ---------------------------------------------------------------------------
    async def list_library(self, org_id: int, query: LibraryQuery) -> LibraryPage:
        await self.refresh(org_id)
        return await library.list_entries(self.db, self.schemes, org_id, query)

    async def library_entry(self, org_id: int, entry_id: int) -> LibraryEntryDetail:
        await self.refresh(org_id)
        return await library.get_entry(self.db, self.schemes, org_id, entry_id)

    # -- the interface ecosystems use (npm audit, the PyPI JSON API) ------------------------
    async def advisories_for(
        self,
        org_id: int,
        ecosystem: str,
        package: str,
        versions: Iterable[str],
        *,
        distribution: str = "",
    ) -> dict[str, list[AdvisoryMatch]]:
        """For each version: the advisories affecting it; a version that is one of the
        organization's patched builds is matched as its upstream version, with the advisories
        the build declares fixed marked `fixed_by_patch`."""
        from graft.vulns.lookup import advisories_for

        return await advisories_for(self, org_id, ecosystem, package, versions, distribution)

    # -- package requests --------------------------------------------------------------------
    async def submit_request(
        self,
        org_id: int,
        account_id: int | None,
        *,
        ecosystem: str,
        package: str,
        version: str = "",
        reason: str = "",
    ) -> RequestView:
        from graft.vulns import requests

        return await requests.submit(self, org_id, account_id, ecosystem, package, version, reason)

    async def list_requests(
        self, org_id: int, *, status: RequestStatus | None = None
    ) -> list[RequestView]:
        from graft.vulns import requests

        return await requests.list_requests(self.db, org_id, status)

    async def set_request_status(
        self, org_id: int, request_id: int, new_status: RequestStatus
    ) -> RequestView:
        """open → in progress → published | declined (admins); 409 for another move."""
        from graft.vulns import requests

        return await requests.set_status(self.db, org_id, request_id, new_status)

    async def on_published(self, file: CatalogFile) -> None:
        """Called by the catalog after a publish: entries of that package become due, and
        the organization's matching requests are marked published."""
        from graft.vulns import requests

        await status.mark_due(self.db, [(file.ecosystem, file.package)], org_id=file.org_id)
        if file.kind == "patched":
            await requests.publish_matching(self, file)

    # -- remediation ---------------------------------------------------------------------------
    async def remediate(
        self, org_id: int, ecosystem: str, packages: Sequence[tuple[str, str]]
    ) -> RemediationResult:
        """Per (name, version): the patched build to use and the CVEs it fixes, or why none."""
        from graft.vulns.remediate import remediate

        return await remediate(self, org_id, ecosystem, packages)

    # -- Graft's own OSV feed --------------------------------------------------------------------
    async def osv_records(self, org_id: int) -> list[dict[str, Any]]:
        """One OSV record per patched build of the organization, with the fixed ranges that
        let scanners recognise the build (`/api/osv/all.zip`)."""
        from graft.vulns.feed import records

        return await records(self, org_id)

    async def osv_record(self, org_id: int, osv_id: str) -> dict[str, Any]:
        from graft.vulns.feed import record

        return await record(self, org_id, osv_id)

    def cached(self, key: tuple[str, str], ttl: float = 5.0) -> Any:
        hit = self._advisory_cache.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < ttl else None

    def remember(self, key: tuple[str, str], value: Any) -> None:
        if len(self._advisory_cache) > 20_000:
            self._advisory_cache.clear()
        self._advisory_cache[key] = (time.monotonic(), value)
