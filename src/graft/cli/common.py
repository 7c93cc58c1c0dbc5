"""Helpers shared by the command modules: output, errors, database access, durations."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from graft.accounts.service import AccountService
from graft.db import Database
from graft.db.migrate import SchemaNotCurrent
from graft.errors import GraftError
from graft.settings import Settings, SettingsError, load_settings

T = TypeVar("T")

out = Console(soft_wrap=True)  # never break lines that scripts or people copy
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
OrgOpt = Annotated[str, typer.Option("--org", "-o", help="Organization name.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc), 2) from None


def run_db(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Open the configured database (migrating it first), run `work`, close, map errors."""
    cfg = settings()

    async def main() -> T:
        db = Database(cfg.effective_database_url)
        try:
            await db.prepare(migrate=cfg.migrate_on_start)
            return await work(db, cfg)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except GraftError as exc:
        raise fail(exc.message) from None
    except OSError as exc:
        raise fail(f"cannot open the database: {exc}") from None
    except SchemaNotCurrent as exc:
        raise fail(str(exc)) from None


def run_admin(work: Callable[[AccountService], Awaitable[T]]) -> T:
    """`run_db` with the account service, for organization/account/token commands."""

    async def with_service(db: Database, cfg: Settings) -> T:
        grace = dt.timedelta(seconds=cfg.token_grace_seconds)
        return await work(AccountService(db, default_grace=grace))

    return run_db(with_service)


def parse_duration(text: str, *, allow_zero: bool = False) -> dt.timedelta:
    """`90s`, `15m`, `24h`, `30d`, `2w` or a number of seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration such as 30d, 24h, 15m or 3600")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    value = dt.timedelta(seconds=int(m.group(1)) * unit)
    if not allow_zero and not value:
        raise typer.BadParameter("must be longer than zero")
    return value


def emit_json(data: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json")
    elif isinstance(data, dict):
        payload = data
    else:
        payload = [item.model_dump(mode="json") for item in data]
    out.print_json(json.dumps(payload))


def when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, wide: bool = False
) -> None:
    """`wide`: many columns; when the output is not a terminal (a pipe, a file), lay the table
    out at its natural width instead of squeezing it into 80 columns."""
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col, no_wrap=wide)
    for row in rows:
        t.add_row(*(str(cell) for cell in row))
    if not rows:
        out.print(f"{title}: none")
    elif wide and not out.is_terminal:
        Console(file=out.file, width=400, soft_wrap=True).print(t)
    else:
        out.print(t)
