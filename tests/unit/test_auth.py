from __future__ import annotations

import asyncio
import base64
import datetime as dt

import pytest

from graft.accounts import tokens
from graft.accounts.auth import Authenticator, extract_token
from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.errors import TooManyRequests, Unauthorized

TOKEN = tokens.generate()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("username", ["rootio", "root", "token", "acme", "", "__token__"])
def test_basic_with_any_username(username: str) -> None:
    assert extract_token(basic(username, TOKEN)) == TOKEN


def test_token_as_username_with_empty_password() -> None:
    assert extract_token(basic(TOKEN, "")) == TOKEN


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer   {TOKEN}  "])
def test_bearer(header: str) -> None:
    assert extract_token(header) == TOKEN


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "authentication required"),
        ("", "authentication required"),
        ("Basic !!!notbase64", "invalid Basic credentials"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "need a ':'"),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "invalid Basic credentials"),
        ("Basic " + base64.b64encode(b":").decode(), "must be a Graft token"),
        ("Bearer", "empty Bearer token"),
        ("Digest username=x", "unsupported Authorization scheme"),
    ],
)
def test_malformed_headers_say_why(header: str | None, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        extract_token(header)


def principal(expires_at: dt.datetime | None = None) -> Principal:
    return Principal(
        org_id=1,
        org="acme",
        account_id=2,
        account="ci",
        account_kind="service",
        site_admin=False,
        token_id=3,
        scopes=frozenset({Scope.READ}),
        expires_at=expires_at,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Resolver:
    def __init__(self, result: Principal | None) -> None:
        self.result = result
        self.calls = 0

    async def __call__(self, digest: str) -> Principal | None:
        self.calls += 1
        await asyncio.sleep(0.01)
        return self.result


def make(resolver: Resolver, clock: FakeClock, limit: int = 3) -> Authenticator:
    return Authenticator(
        resolver, cache_seconds=5, failure_limit=limit, failure_window=60, clock=clock
    )


async def test_verified_token_is_cached_until_the_cache_delay() -> None:
    clock, resolver = FakeClock(), Resolver(principal())
    auth = make(resolver, clock)
    for _ in range(10):
        assert (await auth.authenticate(f"Bearer {TOKEN}", "10.0.0.1")).org == "acme"
    assert resolver.calls == 1
    assert set(auth.take_last_used()) == {3}  # last-used kept in memory, not written per request
    # A revocation is seen once the cache entry is older than cache_seconds.
    resolver.result = None
    clock.now += 5.1
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {TOKEN}", "10.0.0.1")
    assert resolver.calls == 2


async def test_concurrent_misses_cost_one_lookup() -> None:
    resolver = Resolver(principal())
    auth = make(resolver, FakeClock())
    results = await asyncio.gather(
        *(auth.authenticate(basic("x", TOKEN), "10.0.0.1") for _ in range(20))
    )
    assert {p.token_id for p in results} == {3}
    assert resolver.calls == 1


async def test_cached_principal_past_its_expiry_is_rejected() -> None:
    past = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=50)
    resolver = Resolver(principal(expires_at=past))
    auth = make(resolver, FakeClock())
    await auth.authenticate(f"Bearer {TOKEN}", "a")
    await asyncio.sleep(0.06)
    resolver.result = None  # the database agrees it has expired
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {TOKEN}", "a")


async def test_malformed_token_never_reaches_the_database() -> None:
    resolver = Resolver(principal())
    auth = make(resolver, FakeClock(), limit=100)
    with pytest.raises(Unauthorized):
        await auth.authenticate("Bearer graft_short", "a")
    assert resolver.calls == 0


async def test_repeated_failures_from_one_address_are_rate_limited() -> None:
    clock, resolver = FakeClock(), Resolver(None)
    auth = make(resolver, clock, limit=3)
    bad = f"Bearer {tokens.generate()}"
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await auth.authenticate(bad, "10.0.0.9")
    with pytest.raises(TooManyRequests) as exc:
        await auth.authenticate(bad, "10.0.0.9")
    assert exc.value.retry_after >= 1
    # Another address is unaffected, and the block ends with the window.
    with pytest.raises(Unauthorized):
        await auth.authenticate(bad, "10.0.0.10")
    clock.now += 61
    with pytest.raises(Unauthorized):
        await auth.authenticate(bad, "10.0.0.9")


async def test_a_cached_valid_token_still_works_from_a_blocked_address() -> None:
    clock, resolver = FakeClock(), Resolver(principal())
    auth = make(resolver, clock, limit=2)
    await auth.authenticate(f"Bearer {TOKEN}", "nat")
    resolver.result = None
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await auth.authenticate(f"Bearer {tokens.generate()}", "nat")
    # A CI farm behind one NAT address keeps working with its good token.
    assert (await auth.authenticate(f"Bearer {TOKEN}", "nat")).token_id == 3
