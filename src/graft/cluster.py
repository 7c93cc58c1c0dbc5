"""What replicas agree on beyond the database rows: cache invalidation and cluster-wide locks.

Every replica keeps short-lived caches (verified tokens, catalog lookups, OCI manifests) and
does some work once for everyone (an upstream download, a repository signature, a garbage
collection pass). On PostgreSQL:

- **Invalidation** goes by `LISTEN/NOTIFY` on the channel `graft`. A writer calls
  `announce(session, topic, payload)` inside the transaction of its change, so the message
  is delivered at commit — never before the change is visible, never for a rolled-back one —
  to every listening replica, the writer's own included (the CLI announces too: `graft token
  revoke` reaches the running servers). Each replica keeps one listening connection; while it
  is down (or after a reconnect, when messages may have been missed) every subscriber is told
  to drop everything (`payload None`), and the caches' own TTLs bound the delay anyway.
- **Locks** are session advisory locks (`pg_try_advisory_lock`) taken on that same dedicated
  connection, so a lock held for a long download costs no pooled connection. Waiters poll
  with back-off. If the connection is lost the server releases its locks; the holder carries
  on, and the worst case is what the lock otherwise prevents once: a duplicate download of
  the same content-addressed blob or a second signature of the same index.

On SQLite (one machine, one process in practice) messages reach this process's subscribers
only and locks are process-local.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from graft.db import Database

log = logging.getLogger("graft.cluster")

CHANNEL = "graft"
_PING_SECONDS = 10.0  # a silently dead listening connection is noticed within this
_RECONNECT_SECONDS = 1.0

Subscriber = Callable[[dict[str, Any] | None], None]


async def announce(session: AsyncSession, topic: str, payload: dict[str, Any]) -> None:
    """Tell every replica, when `session`'s transaction commits (PostgreSQL; else nothing:
    the process that wrote drops its own caches)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    message = json.dumps({"t": topic, "p": payload}, separators=(",", ":"))
    await session.execute(text("SELECT pg_notify(:c, :m)"), {"c": CHANNEL, "m": message})


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for a name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _LocalLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Cluster:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.shared = db.dialect == "postgresql"
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._local: dict[str, _LocalLock] = {}
        self._conn: Any = None  # asyncpg.Connection while connected
        self._conn_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.received = 0  # messages delivered (tests, metrics)

    # -- messages -----------------------------------------------------------------------------
    def subscribe(self, topic: str, callback: Subscriber) -> None:
        """`callback(payload)` for each message on `topic`; `callback(None)`: drop everything."""
        self._subscribers.setdefault(topic, []).append(callback)

    def deliver(self, topic: str, payload: dict[str, Any] | None) -> None:
        """Run the subscribers of `topic` (also used by a writer for its own process)."""
        for callback in self._subscribers.get(topic, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("subscriber of %s failed", topic)

    def _reset_all(self) -> None:
        for topic in self._subscribers:
            self.deliver(topic, None)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, message: str) -> None:
        try:
            data = json.loads(message)
            topic, payload = data["t"], data["p"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed cluster message: %.200s", message)
            return
        self.received += 1
        self.deliver(topic, payload)

    # -- the listening connection ---------------------------------------------------------------
    async def start(self) -> None:
        if self.shared and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="cluster-listen")
            # Wait briefly so that changes right after start-up are heard; carry on otherwise.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    def _dsn(self) -> str:
        url = make_url(self.db.url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
                log.warning("cluster connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster connection failed (%s); retrying", exc)
            await self._close()
            self._reset_all()
            await asyncio.sleep(_RECONNECT_SECONDS)

    async def _listen_once(self) -> None:
        """Connect, listen, and return when the connection is gone."""
        import asyncpg

        conn = await asyncpg.connect(self._dsn(), timeout=10)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        self._conn = conn
        self._connected.set()
        self._reset_all()  # anything announced while not listening was missed
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), _PING_SECONDS)
            if not lost.is_set():
                async with self._conn_lock:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), _PING_SECONDS)

    async def _query(self, sql: str, *args: Any) -> Any:
        conn = self._conn
        if conn is None:
            raise ConnectionError("no cluster connection")
        async with self._conn_lock:
            return await asyncio.wait_for(conn.fetchval(sql, *args), _PING_SECONDS)

    # -- locks ----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait: float | None = None) -> AsyncIterator[bool]:
        """Hold `name` across every replica; yields False if it could not be had within
        `wait` seconds (None: wait as long as it takes; 0: try once), then the caller decides
        whether to go ahead anyway. Without a cluster connection (SQLite, or PostgreSQL
        unreachable) only this process is excluded."""
        local = self._local.get(name)
        if local is None:
            local = self._local[name] = _LocalLock()
        local.users += 1
        deadline = None if wait is None else time.monotonic() + wait
        try:
            if wait == 0 and local.lock.locked():
                yield False
                return
            try:
                await asyncio.wait_for(local.lock.acquire(), wait or None)
            except TimeoutError:
                yield False
                return
            try:
                held = await self._acquire(name, deadline)
                try:
                    yield held is not False
                finally:
                    if held:
                        with contextlib.suppress(Exception):
                            await self._query("SELECT pg_advisory_unlock($1)", lock_key(name))
            finally:
                local.lock.release()
        finally:
            local.users -= 1
            if not local.users:
                del self._local[name]

    async def _acquire(self, name: str, deadline: float | None) -> bool | None:
        """True: the advisory lock is held; None: no cluster lock to take; False: timed out."""
        if not self.shared or self._conn is None:
            return None
        key = lock_key(name)
        delay = 0.02
        while True:
            try:
                if await self._query("SELECT pg_try_advisory_lock($1)", key):
                    return True
            except Exception as exc:  # connection trouble: degrade to this process only
                log.warning("cluster lock %s not taken (%s); going ahead", name, exc)
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return False
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(pause)
            delay = min(delay * 2, 0.5)
