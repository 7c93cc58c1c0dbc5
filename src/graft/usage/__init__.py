"""Install events → per-organization library entries, batched off the request path."""

from graft.usage.recorder import Served, UsageEvent, UsageRecorder

__all__ = ["Served", "UsageEvent", "UsageRecorder"]
