"""The root `graft` Typer application; command modules attach themselves to it."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Graft: a self-hosted registry of security-patched packages and images.\n\n"
    "Configuration comes from GRAFT_* environment variables and ./graft.toml "
    "(see `graft config show`).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
