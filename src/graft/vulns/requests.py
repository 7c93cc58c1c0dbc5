"""Package requests: an organization asks for a patched build of a package (and version).

open → in progress → published | declined, moved by admins; a request is published
automatically when the organization publishes a matching patched build.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from graft.db import Database
from graft.db.models import Account, PackageRequest
from graft.errors import Conflict, InvalidInput, NotFound
from graft.vulns.models import REQUEST_STATUSES, RequestStatus, RequestView

if TYPE_CHECKING:
    from graft.catalog.service import CatalogFile
    from graft.vulns.service import VulnService

#: the moves an admin may make
MOVES: dict[str, tuple[str, ...]] = {
    "open": ("in progress", "published", "declined"),
    "in progress": ("published", "declined", "open"),
    "published": (),
    "declined": ("open",),
}


def _view(row: PackageRequest, account: str | None) -> RequestView:
    return RequestView(
        id=row.id,
        ecosystem=row.ecosystem,
        package=row.package,
        version=row.version,
        reason=row.reason,
        status=row.status,
        created_by=account,
        created_at=row.created_at,
        updated_at=row.updated_at,
        published_version=row.published_version,
    )


async def submit(
    service: VulnService,
    org_id: int,
    account_id: int | None,
    ecosystem: str,
    package: str,
    version: str,
    reason: str,
) -> RequestView:
    known = [*sorted(service.schemes), "oci"]
    if ecosystem not in known:
        raise InvalidInput(f"unknown ecosystem {ecosystem!r}; known: {', '.join(known)}")
    package, version = package.strip(), version.strip()
    if not package or len(package) > 255 or len(version) > 255 or len(reason) > 4000:
        raise InvalidInput("a request needs a package name (≤ 255 characters), a version ≤ 255")
    scheme = service.schemes.get(ecosystem)
    if scheme is not None:
        package = scheme.normalize(package)
        if version and scheme.is_valid is not None and not scheme.is_valid(version):
            raise InvalidInput(f"{version!r} is not a valid {ecosystem} version")
    now = dt.datetime.now(dt.UTC)
    async with service.db.session() as s:
        row = PackageRequest(
            org_id=org_id,
            ecosystem=ecosystem,
            package=package,
            version=version,
            reason=reason,
            status="open",
            created_by=account_id,
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        await s.flush()
        name = None
        if account_id is not None:
            name = (
                await s.execute(select(Account.name).where(Account.id == account_id))
            ).scalar_one_or_none()
        return _view(row, name)


async def list_requests(
    db: Database, org_id: int, status: RequestStatus | None = None
) -> list[RequestView]:
    query = (
        select(PackageRequest, Account.name)
        .outerjoin(Account, Account.id == PackageRequest.created_by)
        .where(PackageRequest.org_id == org_id)
        .order_by(PackageRequest.id.desc())
    )
    if status is not None:
        query = query.where(PackageRequest.status == status)
    async with db.session() as s:
        return [_view(row, name) for row, name in await s.execute(query)]


async def set_status(
    db: Database, org_id: int, request_id: int, new_status: RequestStatus
) -> RequestView:
    if new_status not in REQUEST_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(REQUEST_STATUSES)}")
    async with db.session() as s:
        row = await s.get(PackageRequest, request_id, with_for_update=True)
        if row is None or row.org_id != org_id:
            raise NotFound(f"request {request_id} not found")
        if new_status != row.status:
            if new_status not in MOVES[row.status]:
                raise Conflict(f"a request that is {row.status!r} cannot become {new_status!r}")
            row.status = new_status
            row.updated_at = dt.datetime.now(dt.UTC)
        name = None
        if row.created_by is not None:
            name = (
                await s.execute(select(Account.name).where(Account.id == row.created_by))
            ).scalar_one_or_none()
        return _view(row, name)


async def publish_matching(service: VulnService, file: CatalogFile) -> int:
    """Mark the organization's open requests for this package (and upstream version, or
    any version when the request named none) published; returns how many."""
    upstream = file.upstream_version or file.version
    async with service.db.session() as s:
        rows = await s.scalars(
            select(PackageRequest).where(
                PackageRequest.org_id == file.org_id,
                PackageRequest.ecosystem == file.ecosystem,
                PackageRequest.package == file.package,
                PackageRequest.status.in_(("open", "in progress")),
                or_(PackageRequest.version == "", PackageRequest.version == upstream),
            )
        )
        now = dt.datetime.now(dt.UTC)
        count = 0
        for row in rows:
            row.status = "published"
            row.published_version = file.version
            row.updated_at = now
            count += 1
    return count
