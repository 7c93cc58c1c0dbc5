"""`graft configure CLIENT`: the exact client configuration for a Graft server."""

from __future__ import annotations

from typing import Annotated

import typer

from graft.cli.app import app
from graft.cli.common import fail
from graft.clientconfig import Client, render


@app.command()
def configure(
    client: Annotated[
        Client,
        typer.Argument(
            help="pip, uv, poetry, twine, apt, apk, maven, gradle, docker, containerd, "
            "kubernetes, npm, pnpm or yarn."
        ),
    ],
    url: Annotated[
        str, typer.Option(help="Graft's URL as clients reach it.", envvar="GRAFT_URL")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str, typer.Option(help="Token to put in the snippets (default: a placeholder).")
    ] = "$GRAFT_TOKEN",
    distro: Annotated[str, typer.Option(help="apt: debian or ubuntu.")] = "debian",
    codename: Annotated[str, typer.Option(help="apt: e.g. bookworm or noble.")] = "bookworm",
    release: Annotated[str, typer.Option(help="apk: Alpine release, e.g. 3.20.")] = "3.20",
    image: Annotated[
        str, typer.Option(help="docker/containerd/kubernetes: an image to show.")
    ] = "library/python:3.12-slim",
) -> None:
    """Print the configuration a client needs to install from (or publish to) Graft."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise fail(f"--url must be an http(s) URL, not {url!r}", 2)
    print(
        render(client, base, token, distro=distro, codename=codename, release=release, image=image),
        end="",
    )
