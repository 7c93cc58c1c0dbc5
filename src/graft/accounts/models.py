"""Views of accounts and tokens handed to the API, the CLI and the protocol routes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from graft.accounts.scopes import Scope


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: resolved from a token, cached, never holds the token itself."""

    org_id: int
    org: str
    account_id: int
    account: str
    account_kind: str
    site_admin: bool
    token_id: int
    scopes: frozenset[Scope]  # expanded: admin includes publish and read
    expires_at: dt.datetime | None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


class OrgView(BaseModel):
    id: int
    name: str
    created_at: dt.datetime


class AccountView(BaseModel):
    id: int
    org: str
    name: str
    kind: Literal["user", "service"]
    site_admin: bool
    created_at: dt.datetime


class TokenView(BaseModel):
    id: int
    org: str
    account: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    replaced_by: int | None
    status: Literal["active", "expiring", "expired", "revoked"]


class NewToken(BaseModel):
    """Returned once, when a token is created or rotated: `token` is never shown again."""

    token: str
    info: TokenView
    previous_valid_until: dt.datetime | None = None
