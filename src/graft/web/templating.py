"""The Jinja2 environment of the web app: templates from the package, autoescaped, compiled
once per process; a few filters for dates and numbers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from graft.db.models import utcnow


def when(value: dt.datetime | None, empty: str = "never") -> str:
    """`2026-12-02 14:05 UTC`: absolute, unambiguous, the same for every viewer."""
    if value is None:
        return empty
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: dt.datetime | None, empty: str = "never") -> str:
    """`3 days ago` / `in 5 hours`: the coarse distance to now."""
    if value is None:
        return empty
    seconds = (value - utcnow()).total_seconds()
    future, seconds = seconds > 0, abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            text = f"{n} {unit}{'s' if n != 1 else ''}"
            break
    else:
        return "just now"
    return f"in {text}" if future else f"{text} ago"


def number(value: int | float) -> str:
    return f"{value:,}"


class Templates:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("graft.web", "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,  # a typo in a template is an error, not an empty cell
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(when=when, ago=ago, number=number)

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(name).render(**context)
        return HTMLResponse(body, status_code=status_code)
