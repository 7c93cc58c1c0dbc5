"""Turn an `Authorization` header into a Principal, without a database round-trip when warm.

Accepted: HTTP Basic with any username and the token as password (or the token as username
with an empty password, as `https://TOKEN@host` sends it), and `Bearer <token>`. A verified
token is cached for `auth_cache_seconds`, keyed by the exact header value so that a warm request
costs one dictionary lookup; that is the documented delay before a revocation or a rotation
grace expiry takes effect. Failed attempts are counted per client address.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from graft.accounts import tokens
from graft.accounts.models import Principal
from graft.errors import TooManyRequests, Unauthorized
from graft.metrics import AUTH_FAILURES
from graft.singleflight import SingleFlight

Resolver = Callable[[str], Awaitable[Principal | None]]


def extract_token(authorization: str | None) -> str:
    """The token carried by an Authorization header; Unauthorized with the reason otherwise."""
    if not authorization:
        raise Unauthorized("authentication required: send a Graft token")
    scheme, _, value = authorization.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        if not value:
            raise Unauthorized("malformed Authorization header: empty Bearer token")
        return value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(
                "malformed Authorization header: invalid Basic credentials"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized("malformed Authorization header: Basic credentials need a ':'")
        token = password or username
        if not token:
            raise Unauthorized("authentication required: the password must be a Graft token")
        return token
    raise Unauthorized("unsupported Authorization scheme: use Basic or Bearer with a Graft token")


@dataclass(slots=True)
class _Cached:
    principal: Principal
    until: float  # monotonic


class Authenticator:
    def __init__(
        self,
        resolve: Resolver,
        *,
        cache_seconds: float,
        failure_limit: int,
        failure_window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolve = resolve
        self._cache_seconds = cache_seconds
        self._failure_limit = failure_limit
        self._failure_window = failure_window
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lookups: SingleFlight[Principal | None] = SingleFlight()
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, count)
        # token id -> last time seen (epoch seconds); written in batches, not per request.
        self.last_used: dict[int, float] = {}

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal of a header verified within the cache delay, else None (then call
        `authenticate`). Synchronous: a warm request costs one dictionary lookup and no
        coroutine."""
        entry = self._cache.get(authorization) if authorization else None
        if entry is None or entry.until <= self._clock() or not _unexpired(entry.principal):
            return None
        self.last_used[entry.principal.token_id] = time.time()
        return entry.principal

    async def authenticate(self, authorization: str | None, client: str) -> Principal:
        principal = self.cached(authorization)
        if principal is None:
            principal = await self._verify(authorization, client, self._clock())
            self.last_used[principal.token_id] = time.time()
        return principal

    async def _verify(self, authorization: str | None, client: str, now: float) -> Principal:
        try:
            token = extract_token(authorization)
        except Unauthorized:
            if authorization:  # a missing header is a challenge, not an attack
                self._fail(client)
            raise
        self._check_blocked(client, now)
        digest = tokens.digest(token)
        found = (
            # one database query per token however many requests miss the cache at once
            await self._lookups.do(digest, lambda: self._resolve(digest))
            if tokens.well_formed(token)
            else None
        )
        if found is None:
            self._fail(client)
            raise Unauthorized("invalid, expired or revoked token")
        if self._cache_seconds > 0 and authorization:
            if len(self._cache) >= 50_000:  # bound memory: many distinct headers
                self._cache.clear()
            self._cache[authorization] = _Cached(found, now + self._cache_seconds)
        return found

    def _check_blocked(self, client: str, now: float) -> None:
        start, count = self._failures.get(client, (now, 0))
        if now - start < self._failure_window and count >= self._failure_limit:
            retry = max(1, int(self._failure_window - (now - start)) + 1)
            raise TooManyRequests(
                f"too many failed authentications from {client}; retry in {retry}s", retry
            )

    def _fail(self, client: str) -> None:
        AUTH_FAILURES.inc()
        now = self._clock()
        start, count = self._failures.get(client, (now, 0))
        if now - start >= self._failure_window:
            start, count = now, 0
        self._failures[client] = (start, count + 1)
        if len(self._failures) > 10_000:  # bound memory under address spraying
            cutoff = now - self._failure_window
            self._failures = {k: v for k, v in self._failures.items() if v[0] >= cutoff}

    def forget(self) -> None:
        """Drop every cached verification (used after revocations in this process)."""
        self._cache.clear()

    def take_last_used(self) -> dict[int, dt.datetime]:
        seen, self.last_used = self.last_used, {}
        return {tid: dt.datetime.fromtimestamp(t, dt.UTC) for tid, t in seen.items()}


def _unexpired(p: Principal) -> bool:
    return p.expires_at is None or p.expires_at > dt.datetime.now(dt.UTC)  # only if it expires
