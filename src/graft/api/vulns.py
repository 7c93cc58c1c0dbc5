"""Management API for discovery and vulnerability status: the library, package requests,
remediation and Graft's OSV feed. Routes only translate HTTP to `ctx.vulns` calls; every
answer is scoped to the caller's organization (another organization's ids answer 404)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from graft.api.app import Admin, Reader
from graft.context import AppContext
from graft.vulns.models import (
    Level,
    LibraryEntryDetail,
    LibraryPage,
    LibraryQuery,
    RemediationResult,
    RequestStatus,
    RequestView,
    Sort,
    Status,
)


class RequestCreate(BaseModel):
    ecosystem: str = Field(max_length=32)
    package: str = Field(min_length=1, max_length=255)
    version: str = Field("", max_length=255)
    reason: str = Field("", max_length=4000)


class RequestUpdate(BaseModel):
    status: RequestStatus


class PackageVersion(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    version: str = Field(min_length=1, max_length=255)


class RemediateBody(BaseModel):
    packages: list[PackageVersion] = Field(max_length=5000)


def vulns_router(ctx: AppContext) -> APIRouter:
    router = APIRouter()

    @router.get("/library", response_model=LibraryPage, tags=["library"])
    async def library(
        principal: Reader,
        ecosystem: Annotated[str | None, Query(max_length=32)] = None,
        status: Status | None = None,
        severity: Annotated[Level | None, Query(description="at least this level unfixed")] = None,
        q: Annotated[str | None, Query(max_length=255, description="in the package name")] = None,
        sort: Sort = "-last_seen",
        cursor: Annotated[str | None, Query(max_length=1024)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> LibraryPage:
        """What the organization installed, with each entry's vulnerability status."""
        query = LibraryQuery(ecosystem, status, severity, q, sort, cursor, limit)
        return await ctx.vulns.list_library(principal.org_id, query)

    @router.get("/library/{entry_id}", response_model=LibraryEntryDetail, tags=["library"])
    async def library_entry(entry_id: int, principal: Reader) -> LibraryEntryDetail:
        """One entry: who used it, the advisories before and after the patched build."""
        return await ctx.vulns.library_entry(principal.org_id, entry_id)

    @router.post("/requests", response_model=RequestView, status_code=201, tags=["requests"])
    async def submit_request(body: RequestCreate, principal: Reader) -> RequestView:
        """Ask for a patched build of a package (any member of the organization)."""
        return await ctx.vulns.submit_request(
            principal.org_id,
            principal.account_id,
            ecosystem=body.ecosystem,
            package=body.package,
            version=body.version,
            reason=body.reason,
        )

    @router.get("/requests", response_model=list[RequestView], tags=["requests"])
    async def list_requests(
        principal: Reader, status: RequestStatus | None = None
    ) -> list[RequestView]:
        return await ctx.vulns.list_requests(principal.org_id, status=status)

    @router.patch("/requests/{request_id}", response_model=RequestView, tags=["requests"])
    async def update_request(request_id: int, body: RequestUpdate, principal: Admin) -> RequestView:
        """open → in progress → published | declined (admin scope)."""
        return await ctx.vulns.set_request_status(principal.org_id, request_id, body.status)

    @router.post("/remediate/{ecosystem}", response_model=RemediationResult, tags=["remediation"])
    async def remediate(
        ecosystem: str, body: RemediateBody, principal: Reader
    ) -> RemediationResult:
        """Per package: the patched build to use and the advisories it fixes, or why none."""
        pairs = [(p.name, p.version) for p in body.packages]
        return await ctx.vulns.remediate(principal.org_id, ecosystem, pairs)

    @router.get("/osv/all.zip", tags=["osv"], response_class=Response)
    async def osv_all(principal: Reader) -> Response:
        """Graft's OSV feed of the organization's patched builds, in the OSV export layout."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for rec in await ctx.vulns.osv_records(principal.org_id):
                info = zipfile.ZipInfo(f"{rec['id']}.json", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, json.dumps(rec, indent=1))
        return Response(buf.getvalue(), media_type="application/zip")

    @router.get("/osv/{osv_id}.json", tags=["osv"])
    async def osv_one(osv_id: str, principal: Reader) -> Response:
        rec = await ctx.vulns.osv_record(principal.org_id, osv_id)
        return Response(json.dumps(rec, indent=1), media_type="application/json")

    return router
