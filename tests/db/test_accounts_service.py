"""Accounts and tokens against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from graft.accounts import tokens
from graft.accounts.scopes import Scope, parse_scopes
from graft.accounts.service import AccountService
from graft.db import Database
from graft.db.models import Account, Organization, Token
from graft.errors import Conflict, InvalidInput, NotFound

HOUR = dt.timedelta(hours=1)


@pytest.fixture
async def svc(db: Database) -> AccountService:
    service = AccountService(db, default_grace=dt.timedelta(hours=24))
    await service.create_org("acme")
    await service.create_account("acme", "ci", kind="service")
    return service


async def count(db: Database, model: type) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_token_is_stored_only_as_a_hash(svc: AccountService, db: Database) -> None:
    new = await svc.create_token("acme", "ci", parse_scopes("read"), name="build")
    assert tokens.well_formed(new.token)
    async with db.session() as s:
        row = (await s.scalars(select(Token))).one()
    assert row.hash == tokens.digest(new.token)
    assert new.token not in (row.hash, row.prefix, row.name)
    assert new.info.prefix == new.token[:12] and new.info.status == "active"
    assert new.info.expires_at is None  # long-lived by default


async def test_resolve_gives_the_principal_with_expanded_scopes(svc: AccountService) -> None:
    new = await svc.create_token("acme", "ci", parse_scopes("publish"))
    p = await svc.resolve(tokens.digest(new.token))
    assert p is not None
    assert (p.org, p.account, p.account_kind) == ("acme", "ci", "service")
    assert p.scopes == {Scope.READ, Scope.PUBLISH}
    assert await svc.resolve(tokens.digest(tokens.generate())) is None


async def test_revoke_ends_a_token_at_once(svc: AccountService) -> None:
    new = await svc.create_token("acme", "ci", parse_scopes("read"))
    view = await svc.revoke_token(new.info.id, org="acme")
    assert view.status == "revoked"
    assert await svc.resolve(tokens.digest(new.token)) is None


async def test_rotation_keeps_the_old_token_for_the_grace_period(svc: AccountService) -> None:
    old = await svc.create_token(
        "acme", "ci", parse_scopes("read"), expires_in=dt.timedelta(days=90)
    )
    new = await svc.rotate_token(old.info.id, org="acme", grace=HOUR)
    assert new.token != old.token and new.info.scopes == ["read"]
    # Same lifetime as the token it replaces.
    assert new.info.expires_at is not None
    assert abs((new.info.expires_at - new.info.created_at) - dt.timedelta(days=90)) < dt.timedelta(
        seconds=5
    )
    assert new.previous_valid_until is not None
    assert abs(new.previous_valid_until - (dt.datetime.now(dt.UTC) + HOUR)) < dt.timedelta(
        seconds=5
    )
    assert await svc.resolve(tokens.digest(old.token)) is not None
    assert await svc.resolve(tokens.digest(new.token)) is not None
    listed = {t.id: t for t in await svc.list_tokens("acme")}
    assert listed[old.info.id].status == "expiring"
    assert listed[old.info.id].replaced_by == new.info.id


async def test_after_the_grace_period_the_old_token_is_rejected(
    svc: AccountService, db: Database
) -> None:
    old = await svc.create_token("acme", "ci", parse_scopes("read"))
    await svc.rotate_token(old.info.id, grace=HOUR)
    async with db.session() as s:  # let the grace period pass
        await s.execute(
            update(Token)
            .where(Token.id == old.info.id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert await svc.resolve(tokens.digest(old.token)) is None
    assert {t.id: t.status for t in await svc.list_tokens("acme")}[old.info.id] == "expired"


async def test_rotation_with_zero_grace_ends_the_old_token_immediately(
    svc: AccountService,
) -> None:
    old = await svc.create_token("acme", "ci", parse_scopes("admin"))
    new = await svc.rotate_token(old.info.id, grace=dt.timedelta(0))
    assert await svc.resolve(tokens.digest(old.token)) is None
    assert await svc.resolve(tokens.digest(new.token)) is not None


async def test_rotation_default_grace_comes_from_settings(svc: AccountService) -> None:
    old = await svc.create_token("acme", "ci", parse_scopes("read"))
    new = await svc.rotate_token(old.info.id)
    assert new.previous_valid_until is not None
    left = new.previous_valid_until - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23, minutes=59) < left <= dt.timedelta(hours=24)


async def test_rotating_twice_or_a_revoked_token_is_refused(svc: AccountService) -> None:
    old = await svc.create_token("acme", "ci", parse_scopes("read"))
    await svc.rotate_token(old.info.id)
    with pytest.raises(Conflict, match="already rotated"):
        await svc.rotate_token(old.info.id)
    other = await svc.create_token("acme", "ci", parse_scopes("read"))
    await svc.revoke_token(other.info.id)
    with pytest.raises(Conflict, match="revoked"):
        await svc.rotate_token(other.info.id)


async def test_expiring_token(svc: AccountService, db: Database) -> None:
    new = await svc.create_token("acme", "ci", parse_scopes("read"), expires_in=HOUR)
    assert await svc.resolve(tokens.digest(new.token)) is not None
    async with db.session() as s:
        await s.execute(
            update(Token).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert await svc.resolve(tokens.digest(new.token)) is None


async def test_tokens_are_scoped_to_their_organization(svc: AccountService) -> None:
    await svc.create_org("other")
    new = await svc.create_token("acme", "ci", parse_scopes("read"))
    with pytest.raises(NotFound):
        await svc.revoke_token(new.info.id, org="other")
    with pytest.raises(NotFound):
        await svc.rotate_token(new.info.id, org="other")
    assert await svc.list_tokens("other") == []


@pytest.mark.parametrize("name", ["", "Acme", "a b", "-x", "x-", "../etc", "a" * 65, "ü"])
async def test_invalid_names_are_refused_and_nothing_is_written(
    svc: AccountService, db: Database, name: str
) -> None:
    orgs, accounts = await count(db, Organization), await count(db, Account)
    with pytest.raises(InvalidInput):
        await svc.create_org(name)
    with pytest.raises(InvalidInput):
        await svc.create_account("acme", name)
    assert (await count(db, Organization), await count(db, Account)) == (orgs, accounts)


async def test_duplicates_and_unknown_parents(svc: AccountService, db: Database) -> None:
    with pytest.raises(Conflict):
        await svc.create_org("acme")
    with pytest.raises(Conflict):
        await svc.create_account("acme", "ci")
    with pytest.raises(NotFound, match="organization 'nope'"):
        await svc.create_account("nope", "bob")
    with pytest.raises(NotFound, match="account 'bob'"):
        await svc.create_token("acme", "bob", parse_scopes("read"))
    with pytest.raises(InvalidInput):
        await svc.create_account("acme", "bob", kind="robot")
    assert await count(db, Account) == 1
    assert await count(db, Token) == 0


async def test_last_used_is_written_in_batches(svc: AccountService) -> None:
    new = await svc.create_token("acme", "ci", parse_scopes("read"))
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    await svc.record_last_used({new.info.id: when})
    (view,) = await svc.list_tokens("acme", "ci")
    assert view.last_used_at == when


async def test_listing(svc: AccountService) -> None:
    await svc.create_account("acme", "alice")
    assert [a.name for a in await svc.list_accounts("acme")] == ["alice", "ci"]
    assert [o.name for o in await svc.list_orgs()] == ["acme"]
    await svc.create_token("acme", "alice", parse_scopes("read"))
    await svc.create_token("acme", "ci", parse_scopes("publish"))
    assert [t.account for t in await svc.list_tokens("acme", "ci")] == ["ci"]
    assert len(await svc.list_tokens("acme")) == 2
