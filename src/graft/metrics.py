"""Prometheus metrics. With several workers, `graft serve` points PROMETHEUS_MULTIPROC_DIR at
a folder under the data directory so that /metrics sums every worker.

Request metrics are counted in plain dictionaries and handed to prometheus-client once a
second (`RequestMetrics`): in multi-process mode every `inc()`/`observe()` is a locked write
into a memory-mapped file, about 6 µs per request for the three request metrics, which is
more than the rest of the observation together. /metrics therefore lags by at most
`interval` for the other workers (the worker answering the scrape flushes its own first).
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

REQUESTS = Counter(
    "graft_http_requests_total", "HTTP requests by route and status", ["route", "method", "status"]
)
RESPONSE_BYTES = Counter("graft_http_response_bytes_total", "Response body bytes sent", ["route"])
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LATENCY = Histogram(
    "graft_http_request_duration_seconds",
    "Request latency",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
AUTH_FAILURES = Counter("graft_auth_failures_total", "Rejected authentication attempts")
USAGE_EVENTS = Counter("graft_usage_events_total", "Usage events", ["outcome"])


class _Route:
    """What one route accumulated since the last flush."""

    __slots__ = ("buckets", "bytes", "seconds", "statuses")

    def __init__(self) -> None:
        self.statuses: dict[tuple[str, int], int] = {}
        self.bytes = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf


class RequestMetrics:
    """Per-process request counters, applied to the Prometheus metrics every `interval`."""

    def __init__(self, interval: float = 1.0, max_routes: int = 10_000) -> None:
        self.interval = interval
        self.max_routes = max_routes
        self._routes: dict[str, _Route] = {}
        self._scheduled = False

    def record(self, route: str, method: str, status: int, sent: int, seconds: float) -> None:
        acc = self._routes.get(route)
        if acc is None:
            if len(self._routes) >= self.max_routes:  # labels are templates; this is a guard
                self.flush()
            acc = self._routes[route] = _Route()
        key = (method, status)
        acc.statuses[key] = acc.statuses.get(key, 0) + 1
        acc.bytes += sent
        acc.seconds += seconds
        acc.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self.interval, self.flush)
            except RuntimeError:  # no loop (called from sync code): apply now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        routes, self._routes = self._routes, {}
        for route, acc in routes.items():
            for (method, status), n in acc.statuses.items():
                REQUESTS.labels(route, method, str(status)).inc(n)
            RESPONSE_BYTES.labels(route).inc(acc.bytes)
            hist: Any = LATENCY.labels(route)
            # prometheus-client has no "observe n times"; its histogram keeps one value per
            # bucket (not cumulative) and a sum, which is what `observe` itself updates.
            hist._sum.inc(acc.seconds)
            for i, n in enumerate(acc.buckets):
                if n:
                    hist._buckets[i].inc(n)


REQUEST_METRICS = RequestMetrics()


def render() -> tuple[bytes, str]:
    REQUEST_METRICS.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
