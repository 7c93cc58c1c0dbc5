"""The effective upstream list: `[[upstream]]` from settings plus `graft upstream add` records.

Held in memory and reloaded from the database every `refresh_seconds`, so that no request
waits on the upstreams table. A change announces `upstreams` in its own transaction
(`graft.cluster`), so every running replica, told by the CLI process that made it, reloads on
its next request instead of after up to `refresh_seconds`.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from graft.cluster import announce
from graft.db import Database
from graft.db.models import UpstreamRecord
from graft.errors import Conflict, NotFound
from graft.upstream.config import UpstreamConfig


def _from_record(r: UpstreamRecord) -> UpstreamConfig:
    return UpstreamConfig(
        ecosystem=r.ecosystem,
        name=r.name,
        url=r.url,
        priority=r.priority,
        username=r.username,
        password=SecretStr(r.password) if r.password else None,
        token=SecretStr(r.token) if r.token else None,
        ttl_seconds=r.ttl_seconds,
        negative_ttl_seconds=r.negative_ttl_seconds,
        keyring=r.keyring,
        source="database",
    )


class UpstreamRegistry:
    def __init__(
        self, db: Database, configured: list[UpstreamConfig], *, refresh_seconds: float = 30.0
    ) -> None:
        self.db = db
        self.configured = [u.model_copy(update={"source": "config"}) for u in configured]
        names = [u.name for u in self.configured]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate [[upstream]] names in the configuration: {names}")
        self.refresh_seconds = refresh_seconds
        self._stored: list[UpstreamConfig] = []
        self._by_ecosystem: dict[str, list[UpstreamConfig]] = {}
        self._loaded_at = float("-inf")

    async def load(self) -> None:
        async with self.db.session() as s:
            rows = await s.scalars(select(UpstreamRecord).order_by(UpstreamRecord.id))
            self._stored = [_from_record(r) for r in rows]
        by_ecosystem: dict[str, list[UpstreamConfig]] = {}
        for upstream in sorted(self.configured + self._stored, key=lambda u: u.priority):
            by_ecosystem.setdefault(upstream.ecosystem, []).append(upstream)
        self._by_ecosystem = by_ecosystem
        self._loaded_at = time.monotonic()

    async def for_ecosystem(self, ecosystem: str) -> list[UpstreamConfig]:
        """Upstreams of one ecosystem, in priority order (lower first, config before DB)."""
        if time.monotonic() - self._loaded_at > self.refresh_seconds:
            await self.load()
        return self.cached(ecosystem)

    def on_announced(self, payload: dict[str, Any] | None) -> None:
        """An upstream was added or removed (by any process): reload on the next lookup."""
        self._loaded_at = float("-inf")

    def cached(self, ecosystem: str) -> list[UpstreamConfig]:
        return self._by_ecosystem.get(ecosystem, [])

    def all(self) -> list[UpstreamConfig]:
        return sorted(self.configured + self._stored, key=lambda u: (u.ecosystem, u.priority))

    async def add(self, upstream: UpstreamConfig) -> UpstreamConfig:
        if any(u.name == upstream.name for u in self.configured):
            raise Conflict(f"upstream {upstream.name!r} is defined in the configuration file")
        try:
            async with self.db.session() as s:
                s.add(
                    UpstreamRecord(
                        ecosystem=upstream.ecosystem,
                        name=upstream.name,
                        url=upstream.url,
                        priority=upstream.priority,
                        username=upstream.username,
                        password=upstream.password.get_secret_value()
                        if upstream.password
                        else None,
                        token=upstream.token.get_secret_value() if upstream.token else None,
                        ttl_seconds=upstream.ttl_seconds,
                        negative_ttl_seconds=upstream.negative_ttl_seconds,
                        keyring=upstream.keyring,
                    )
                )
                await s.flush()  # a duplicate name fails here, before the announcement
                await announce(s, "upstreams", {"name": upstream.name})
        except IntegrityError:
            raise Conflict(f"upstream {upstream.name!r} already exists") from None
        await self.load()
        return upstream.model_copy(update={"source": "database"})

    async def remove(self, name: str) -> None:
        if any(u.name == name for u in self.configured):
            raise Conflict(f"upstream {name!r} is defined in the configuration file; edit it there")
        async with self.db.session() as s:
            result = await s.execute(delete(UpstreamRecord).where(UpstreamRecord.name == name))
            if getattr(result, "rowcount", 0):
                await announce(s, "upstreams", {"name": name})
        if not getattr(result, "rowcount", 0):
            raise NotFound(f"upstream {name!r} not found")
        await self.load()
