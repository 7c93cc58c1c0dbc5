"""Web sessions on both backends: valid only while the row, its lifetime and its token are."""

from __future__ import annotations

import datetime as dt

from graft.accounts import tokens
from graft.accounts.scopes import Scope
from graft.accounts.service import AccountService
from graft.db import Database
from graft.web.sessions import SessionStore


async def test_a_session_lives_and_dies_with_its_token(db: Database) -> None:
    accounts = AccountService(db, default_grace=dt.timedelta(hours=1))
    await accounts.create_org("acme")
    await accounts.create_account("acme", "alice")
    new = await accounts.create_token("acme", "alice", frozenset({Scope.READ}))
    principal = await accounts.resolve(tokens.digest(new.token))
    assert principal is not None
    store = SessionStore(db, lifetime=dt.timedelta(hours=2))

    cookie, user = await store.create(principal)
    loaded = await store.load(cookie)
    assert loaded is not None and loaded.principal.org == "acme" and loaded.csrf == user.csrf
    assert await store.load(cookie + "x") is None
    assert await store.load("") is None

    await accounts.revoke_token(new.info.id)
    assert await store.load(cookie) is None  # revoking the token ends its sessions

    other = await accounts.create_token("acme", "alice", frozenset({Scope.ADMIN}))
    p2 = await accounts.resolve(tokens.digest(other.token))
    assert p2 is not None
    cookie2, _ = await store.create(p2)
    await store.end(cookie2)
    assert await store.load(cookie2) is None  # signing out deletes the row

    short = SessionStore(db, lifetime=dt.timedelta(seconds=-1))  # already over
    cookie3, _ = await short.create(p2)
    assert await store.load(cookie3) is None
