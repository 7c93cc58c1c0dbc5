"""One in-flight call per key: concurrent callers with the same key share its result."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}

    def running(self, key: Hashable) -> bool:
        return key in self._inflight

    async def do(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        fut = self._inflight.get(key)
        if fut is not None:
            # shield: a cancelled follower must not cancel the leader's shared future
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await work()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: followers re-raise it; no "never retrieved" warning
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            del self._inflight[key]
