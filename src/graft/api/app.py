"""Management API: organizations, accounts and tokens, and `whoami`; the library, package
requests, remediation and the OSV feed (`graft.api.vulns`).

Authorization: every route needs a token. Managing an organization's accounts and tokens needs
the `admin` scope in that organization; creating organizations needs an admin token of a site
administrator account. Another organization's resources answer 404, not 403, so that names do
not leak across tenants.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from graft import __version__
from graft.accounts.models import AccountView, NewToken, OrgView, Principal, TokenView
from graft.accounts.scopes import Scope, parse_scopes
from graft.context import AppContext
from graft.errors import Forbidden, GraftError, InvalidInput, NotFound
from graft.limits import BodyLimitMiddleware
from graft.responses import error_response


class WhoAmI(BaseModel):
    org: str
    account: str
    account_kind: str
    site_admin: bool
    scopes: list[str]
    token_id: int
    token_expires_at: dt.datetime | None


class OrgCreate(BaseModel):
    name: str = Field(max_length=64)


class AccountCreate(BaseModel):
    name: str = Field(max_length=64)
    kind: Literal["user", "service"] = "user"


class TokenCreate(BaseModel):
    account: str = Field(max_length=64)
    scopes: list[Literal["read", "publish", "admin"]] = Field(min_length=1)
    name: str = Field("", max_length=128)
    expires_in_seconds: int | None = Field(None, gt=0, le=100 * 365 * 86400)


class TokenRotate(BaseModel):
    grace_seconds: int | None = Field(
        None, ge=0, le=365 * 86400, description="Default: the server's token_grace_seconds."
    )


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def _reader(request: Request) -> Principal:
    return await context(request).authenticate(request, Scope.READ)


async def _admin(request: Request) -> Principal:
    return await context(request).authenticate(request, Scope.ADMIN)


Reader = Annotated[Principal, Depends(_reader)]
Admin = Annotated[Principal, Depends(_admin)]


def create_api(ctx: AppContext) -> FastAPI:
    api = FastAPI(
        title="Graft management API",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.ctx = ctx
    api.add_middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_api_body_bytes)

    @api.exception_handler(GraftError)
    async def graft_error(request: Request, exc: GraftError) -> JSONResponse:
        resp = error_response(exc, json_body=True)
        assert isinstance(resp, JSONResponse)
        return resp

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid", "message": "; ".join(problems)}, status_code=422)

    def own_org(principal: Principal, org: str) -> None:
        if principal.org != org and not principal.site_admin:
            raise NotFound(f"organization {org!r} not found")

    @api.get("/whoami", response_model=WhoAmI, tags=["auth"])
    async def whoami(principal: Reader) -> WhoAmI:
        """The organization, account and scopes of the credentials sent."""
        return WhoAmI(
            org=principal.org,
            account=principal.account,
            account_kind=principal.account_kind,
            site_admin=principal.site_admin,
            scopes=sorted(s.value for s in principal.scopes),
            token_id=principal.token_id,
            token_expires_at=principal.expires_at,
        )

    @api.get("/orgs", response_model=list[OrgView], tags=["organizations"])
    async def list_orgs(principal: Reader) -> list[OrgView]:
        if principal.site_admin:
            return await ctx.accounts.list_orgs()
        return [await ctx.accounts.get_org(principal.org)]

    @api.post("/orgs", response_model=OrgView, status_code=201, tags=["organizations"])
    async def create_org(body: OrgCreate, principal: Admin) -> OrgView:
        if not principal.site_admin:
            raise Forbidden("creating organizations needs a site administrator's admin token")
        return await ctx.accounts.create_org(body.name)

    @api.get("/orgs/{org}", response_model=OrgView, tags=["organizations"])
    async def get_org(org: str, principal: Reader) -> OrgView:
        own_org(principal, org)
        return await ctx.accounts.get_org(org)

    @api.get("/orgs/{org}/accounts", response_model=list[AccountView], tags=["accounts"])
    async def list_accounts(org: str, principal: Admin) -> list[AccountView]:
        own_org(principal, org)
        return await ctx.accounts.list_accounts(org)

    @api.post(
        "/orgs/{org}/accounts", response_model=AccountView, status_code=201, tags=["accounts"]
    )
    async def create_account(org: str, body: AccountCreate, principal: Admin) -> AccountView:
        own_org(principal, org)
        return await ctx.accounts.create_account(org, body.name, kind=body.kind)

    @api.get("/orgs/{org}/tokens", response_model=list[TokenView], tags=["tokens"])
    async def list_tokens(
        org: str, principal: Admin, account: Annotated[str | None, Query()] = None
    ) -> list[TokenView]:
        own_org(principal, org)
        return await ctx.accounts.list_tokens(org, account)

    @api.post("/orgs/{org}/tokens", response_model=NewToken, status_code=201, tags=["tokens"])
    async def create_token(org: str, body: TokenCreate, principal: Admin) -> NewToken:
        """Create a token. The response holds the token itself: it is never shown again."""
        own_org(principal, org)
        try:
            scopes = parse_scopes(body.scopes)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        expires = dt.timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
        return await ctx.accounts.create_token(
            org, body.account, scopes, name=body.name, expires_in=expires
        )

    @api.post("/orgs/{org}/tokens/{token_id}/rotate", response_model=NewToken, tags=["tokens"])
    async def rotate_token(
        org: str, token_id: int, principal: Admin, body: TokenRotate | None = None
    ) -> NewToken:
        """Issue a replacement; the old token keeps working until `previous_valid_until`."""
        own_org(principal, org)
        grace = (
            dt.timedelta(seconds=body.grace_seconds)
            if body is not None and body.grace_seconds is not None
            else None
        )
        new = await ctx.accounts.rotate_token(token_id, org=org, grace=grace)
        ctx.auth.forget()  # this replica sees the shortened expiry at once
        return new

    @api.post("/orgs/{org}/tokens/{token_id}/revoke", response_model=TokenView, tags=["tokens"])
    @api.delete("/orgs/{org}/tokens/{token_id}", response_model=TokenView, tags=["tokens"])
    async def revoke_token(org: str, token_id: int, principal: Admin) -> TokenView:
        """Revoke at once (other replicas: within auth_cache_seconds)."""
        own_org(principal, org)
        view = await ctx.accounts.revoke_token(token_id, org=org)
        ctx.auth.forget()
        return view

    from graft.api.vulns import vulns_router

    api.include_router(vulns_router(ctx))
    return api
