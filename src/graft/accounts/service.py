"""Organizations, accounts and tokens: every write goes through here (CLI and API alike)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from graft.accounts import scopes as scope_rules
from graft.accounts import tokens
from graft.accounts.models import AccountView, NewToken, OrgView, Principal, TokenView
from graft.accounts.scopes import Scope
from graft.cluster import announce
from graft.db import Database
from graft.db.models import Account, Organization, Token, utcnow
from graft.errors import Conflict, InvalidInput, NotFound

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
ACCOUNT_KINDS = ("user", "service")


def validate_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"invalid {kind} name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


TokenStatus = Literal["active", "expiring", "expired", "revoked"]


def token_status(t: Token, now: dt.datetime) -> TokenStatus:
    if t.revoked_at is not None:
        return "revoked"
    if t.expires_at is not None and t.expires_at <= now:
        return "expired"
    if t.replaced_by_id is not None:
        return "expiring"
    return "active"


def _token_view(t: Token, now: dt.datetime) -> TokenView:
    return TokenView(
        id=t.id,
        org=t.account.organization.name,
        account=t.account.name,
        name=t.name,
        prefix=t.prefix,
        scopes=scope_rules.serialize(scope_rules.parse_scopes(t.scopes)).split(),
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked_at=t.revoked_at,
        last_used_at=t.last_used_at,
        replaced_by=t.replaced_by_id,
        status=token_status(t, now),
    )


def _account_view(a: Account) -> AccountView:
    return AccountView(
        id=a.id,
        org=a.organization.name,
        name=a.name,
        kind=a.kind,
        site_admin=a.site_admin,
        created_at=a.created_at,
    )


def principal_of(t: Token, acc: Account, org: Organization) -> Principal | None:
    """The principal a token row stands for, or None when it is revoked or expired."""
    if token_status(t, utcnow()) in ("revoked", "expired"):
        return None
    return Principal(
        org_id=org.id,
        org=org.name,
        account_id=acc.id,
        account=acc.name,
        account_kind=acc.kind,
        site_admin=acc.site_admin,
        token_id=t.id,
        scopes=scope_rules.expand(scope_rules.parse_scopes(t.scopes)),
        expires_at=t.expires_at,
    )


class AccountService:
    def __init__(self, db: Database, *, default_grace: dt.timedelta) -> None:
        self.db = db
        self.default_grace = default_grace

    # -- organizations --------------------------------------------------------------------
    async def create_org(self, name: str) -> OrgView:
        validate_name("organization", name)
        try:
            async with self.db.session() as s:
                org = Organization(name=name)
                s.add(org)
                await s.flush()
                return OrgView.model_validate(org, from_attributes=True)
        except IntegrityError:
            raise Conflict(f"organization {name!r} already exists") from None

    async def list_orgs(self) -> list[OrgView]:
        async with self.db.session() as s:
            rows = await s.scalars(select(Organization).order_by(Organization.name))
            return [OrgView.model_validate(o, from_attributes=True) for o in rows]

    async def get_org(self, name: str) -> OrgView:
        async with self.db.session() as s:
            return OrgView.model_validate(await self._org(s, name), from_attributes=True)

    @staticmethod
    async def _org(s: AsyncSession, name: str) -> Organization:
        org = await s.scalar(select(Organization).where(Organization.name == name))
        if org is None:
            raise NotFound(f"organization {name!r} not found")
        return org

    # -- accounts -------------------------------------------------------------------------
    async def create_account(
        self, org: str, name: str, *, kind: str = "user", site_admin: bool = False
    ) -> AccountView:
        validate_name("account", name)
        if kind not in ACCOUNT_KINDS:
            raise InvalidInput(f"invalid account kind {kind!r}: use user or service")
        try:
            async with self.db.session() as s:
                o = await self._org(s, org)
                acc = Account(org_id=o.id, name=name, kind=kind, site_admin=site_admin)
                acc.organization = o
                s.add(acc)
                await s.flush()
                return _account_view(acc)
        except IntegrityError:
            raise Conflict(f"account {name!r} already exists in {org!r}") from None

    async def list_accounts(self, org: str) -> list[AccountView]:
        async with self.db.session() as s:
            o = await self._org(s, org)
            rows = await s.scalars(
                select(Account)
                .where(Account.org_id == o.id)
                .options(selectinload(Account.organization))
                .order_by(Account.name)
            )
            return [_account_view(a) for a in rows]

    async def _account(self, s: AsyncSession, org: str, name: str) -> Account:
        o = await self._org(s, org)
        acc = await s.scalar(
            select(Account)
            .where(Account.org_id == o.id, Account.name == name)
            .options(selectinload(Account.organization))
        )
        if acc is None:
            raise NotFound(f"account {name!r} not found in organization {org!r}")
        return acc

    # -- tokens ---------------------------------------------------------------------------
    async def create_token(
        self,
        org: str,
        account: str,
        scopes: frozenset[Scope],
        *,
        name: str = "",
        expires_in: dt.timedelta | None = None,
    ) -> NewToken:
        if len(name) > 128:
            raise InvalidInput("token name is longer than 128 characters")
        if expires_in is not None and expires_in <= dt.timedelta(0):
            raise InvalidInput("token expiry must be in the future")
        async with self.db.session() as s:
            acc = await self._account(s, org, account)
            plain, row = self._new_token_row(acc, scopes, name, expires_in)
            s.add(row)
            await s.flush()
            return NewToken(token=plain, info=_token_view(row, utcnow()))

    @staticmethod
    def _new_token_row(
        acc: Account, scopes: frozenset[Scope], name: str, expires_in: dt.timedelta | None
    ) -> tuple[str, Token]:
        plain = tokens.generate()
        row = Token(
            account_id=acc.id,
            name=name,
            prefix=tokens.display_prefix(plain),
            hash=tokens.digest(plain),
            scopes=scope_rules.serialize(scopes),
            created_at=utcnow(),
            expires_at=utcnow() + expires_in if expires_in else None,
        )
        row.account = acc
        return plain, row

    async def list_tokens(self, org: str, account: str | None = None) -> list[TokenView]:
        async with self.db.session() as s:
            o = await self._org(s, org)
            q = (
                select(Token)
                .join(Account)
                .where(Account.org_id == o.id)
                .options(selectinload(Token.account).selectinload(Account.organization))
                .order_by(Token.id)
            )
            if account is not None:
                q = q.where(Account.name == account)
            now = utcnow()
            return [_token_view(t, now) for t in await s.scalars(q)]

    async def _token(self, s: AsyncSession, token_id: int, org: str | None) -> Token:
        t = await s.scalar(
            select(Token)
            .where(Token.id == token_id)
            .options(selectinload(Token.account).selectinload(Account.organization))
        )
        if t is None or (org is not None and t.account.organization.name != org):
            where = f" in organization {org!r}" if org else ""
            raise NotFound(f"token {token_id} not found{where}")
        return t

    async def rotate_token(
        self, token_id: int, *, org: str | None = None, grace: dt.timedelta | None = None
    ) -> NewToken:
        """Issue a replacement with the same account, scopes and lifetime; the old token keeps
        working for `grace` (default from settings), then is rejected."""
        grace = self.default_grace if grace is None else grace
        if grace < dt.timedelta(0):
            raise InvalidInput("grace period cannot be negative")
        async with self.db.session() as s:
            old = await self._token(s, token_id, org)
            now = utcnow()
            if token_status(old, now) in ("revoked", "expired"):
                raise Conflict(f"token {token_id} is {token_status(old, now)}; create a new one")
            if old.replaced_by_id is not None:
                raise Conflict(f"token {token_id} was already rotated (to {old.replaced_by_id})")
            lifetime = old.expires_at - old.created_at if old.expires_at else None
            plain, new = self._new_token_row(
                old.account, scope_rules.parse_scopes(old.scopes), old.name, lifetime
            )
            s.add(new)
            await s.flush()
            until = now + grace
            old.expires_at = until if old.expires_at is None else min(old.expires_at, until)
            old.replaced_by_id = new.id
            await s.flush()
            # every replica drops its verified-token cache when this commits
            await announce(s, "tokens", {"rotated": token_id})
            return NewToken(
                token=plain, info=_token_view(new, now), previous_valid_until=old.expires_at
            )

    async def revoke_token(self, token_id: int, *, org: str | None = None) -> TokenView:
        async with self.db.session() as s:
            t = await self._token(s, token_id, org)
            if t.revoked_at is None:
                t.revoked_at = utcnow()
                await s.flush()
                await announce(s, "tokens", {"revoked": token_id})
            return _token_view(t, utcnow())

    # -- authentication -------------------------------------------------------------------
    async def resolve(self, token_hash: str) -> Principal | None:
        """The principal of a currently valid token, by its hash; None otherwise."""
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(Token, Account, Organization)
                    .join(Account, Token.account_id == Account.id)
                    .join(Organization, Account.org_id == Organization.id)
                    .where(Token.hash == token_hash)
                )
            ).first()
        if row is None:
            return None
        t, acc, org = row
        # Compare again in constant time: the index lookup itself is not.
        if not tokens.constant_time_equal(t.hash, token_hash):
            return None
        return principal_of(t, acc, org)

    async def record_last_used(self, seen: dict[int, dt.datetime]) -> None:
        """Write the last-used times collected in memory (one statement per token)."""
        if not seen:
            return
        async with self.db.session() as s:
            for token_id, when in seen.items():
                await s.execute(update(Token).where(Token.id == token_id).values(last_used_at=when))
