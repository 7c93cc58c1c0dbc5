"""`graft` command line. Each module attaches its commands to `graft.cli.app.app`."""

from __future__ import annotations

# Importing a command module registers its commands.
from graft.cli import admin as _admin  # noqa: F401
from graft.cli import configure as _configure  # noqa: F401
from graft.cli import keys as _keys  # noqa: F401
from graft.cli import publish as _publish  # noqa: F401
from graft.cli import upstream as _upstream  # noqa: F401
from graft.cli import vulns as _vulns  # noqa: F401
from graft.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
