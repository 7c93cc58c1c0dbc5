"""Prometheus metrics. With several workers, `graft serve` points PROMETHEUS_MULTIPROC_DIR at
a folder under the data directory so that /metrics sums every worker."""

from __future__ import annotations

import os

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
LATENCY = Histogram(
    "graft_http_request_duration_seconds",
    "Request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AUTH_FAILURES = Counter("graft_auth_failures_total", "Rejected authentication attempts")
USAGE_EVENTS = Counter("graft_usage_events_total", "Usage events", ["outcome"])


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
